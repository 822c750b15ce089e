package tokens_test

import (
	"errors"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestRoleTokenKeyErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name               string
		domain, roles, pfp string
		min, max           time.Duration
		wantField          string
	}{
		{name: "missing domain", roles: "r", wantField: "domain"},
		{name: "bad domain", domain: "a b", wantField: "domain"},
		{name: "bad role", domain: "d", roles: "r!", wantField: "role"},
		{name: "bad proxy principal", domain: "d", pfp: "user..x", wantField: "proxy_for_principal"},
		{name: "negative min", domain: "d", min: -time.Second, wantField: "min_expiry"},
		{name: "max over 30 days", domain: "d", max: 31 * 24 * time.Hour, wantField: "max_expiry"},
		{name: "min above max", domain: "d", min: time.Hour, max: time.Minute, wantField: "min_expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokens.RoleTokenKey(tt.domain, tt.roles, tt.pfp, tt.min, tt.max)
			var fe *tokens.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Errorf("RoleTokenKey error = %v, want a FieldError for %q", err, tt.wantField)
			}
		})
	}
}

func TestKeyScope(t *testing.T) {
	k, err := tokens.AccessTokenKey("sports", "writer,reader", "", 600*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.Scope(), "sports:role.reader sports:role.writer"; got != want {
		t.Errorf("Scope() = %q, want %q", got, want)
	}
	all, _ := tokens.AccessTokenKey("sports", "", "", 0)
	if got, want := all.Scope(), "sports:domain"; got != want {
		t.Errorf("Scope() for no roles = %q, want %q", got, want)
	}
	if k.Kind == all.Kind && k == all {
		t.Error("different requests gave equal keys")
	}
}
