package tokens_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestValidateCompoundName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means valid
	}{
		{name: "simple", in: "sports"},
		{name: "compound", in: "sports.api_v2.prod-east"},
		{name: "underscore first", in: "_internal"},
		{name: "empty", in: "", wantErr: "must not be empty"},
		{name: "dash first", in: "-sports", wantErr: "character '-' at 0"},
		{name: "empty part", in: "sports..api", wantErr: "empty part"},
		{name: "trailing dot", in: "sports.", wantErr: "empty part"},
		{name: "colon", in: "sports:role", wantErr: "character ':'"},
		{name: "space", in: "sports api", wantErr: "character ' '"},
		{name: "too long", in: strings.Repeat("a", 257), wantErr: "longer than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tokens.ValidateCompoundName(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateCompoundName(%q) = %v, want nil", tt.in, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateCompoundName(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestValidateService(t *testing.T) {
	if err := tokens.ValidateService("api"); err != nil {
		t.Errorf("ValidateService(api) = %v", err)
	}
	if err := tokens.ValidateService("api.v2"); err == nil {
		t.Error("ValidateService(api.v2) = nil, want an error: a service is a simple name")
	}
}

func TestParseRoles(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "empty means all roles", in: "", want: nil},
		{name: "sorted and deduplicated", in: "writer, reader,writer", want: []string{"reader", "writer"}},
		{name: "compound role", in: "team.admin", want: []string{"team.admin"}},
		{name: "empty element", in: "reader,,writer", wantErr: true},
		{name: "bad name", in: "reader,wr!ter", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokens.ParseRoles(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRoles(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseRoles(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []tokens.Target
		wantErr string
	}{
		{name: "empty", in: " "},
		{name: "role and domain", in: "prov:role.reader, other:domain",
			want: []tokens.Target{{Domain: "prov", Role: "reader"}, {Domain: "other"}}},
		{name: "duplicates dropped", in: "a:domain,a:domain", want: []tokens.Target{{Domain: "a"}}},
		{name: "compound role", in: "prov.sub:role.team.admin", want: []tokens.Target{{Domain: "prov.sub", Role: "team.admin"}}},
		{name: "no colon", in: "prov", wantErr: "want <domain>:role.<role>"},
		{name: "bad kind", in: "prov:group.x", wantErr: "after ':'"},
		{name: "bad domain", in: "pr ov:domain", wantErr: "domain"},
		{name: "bad role", in: "prov:role.", wantErr: "role"},
		{name: "empty element", in: "a:domain,", wantErr: "empty target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokens.ParseTargets(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTargets(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseTargets(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			for _, target := range got {
				back, err := tokens.ParseTarget(target.String())
				if err != nil || back != target {
					t.Errorf("ParseTarget(%q) = %v, %v; want a round trip to %v", target.String(), back, err, target)
				}
			}
		})
	}
}
