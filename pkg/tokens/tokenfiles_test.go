package tokens_test

import (
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestParseTokenFiles(t *testing.T) {
	tests := []struct {
		list    string
		want    string // the files' paths, comma-joined
		wantErr string
	}{
		{list: "roletoken:prov:role.reader", want: "tokens/prov/reader.roletoken"},
		{list: "accesstoken:a.b:role.team.reader, roletoken:a.b:role.x,accesstoken:a.b:role.team.reader", want: "tokens/a.b/team.reader.accesstoken,tokens/a.b/x.roletoken"},
		{list: "prov:role.reader", wantErr: `entry "prov:role.reader": want accesstoken:<domain>:role.<role> or roletoken:<domain>:role.<role>`},
		{list: "idtoken:prov:role.reader", wantErr: "want accesstoken:"},
		{list: "roletoken:prov:domain", wantErr: "a token file holds the token of one role: want roletoken:prov:role.<role>"},
		{list: "roletoken:pr/ov:role.x", wantErr: "domain"},
		{list: "roletoken:prov:role.../x", wantErr: "role"},
		{list: "roletoken:prov:role.a,", wantErr: `entry ""`},
	}
	for _, tt := range tests {
		files, err := tokens.ParseTokenFiles(tt.list)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("tokens.ParseTokenFiles(%q) = %v, want an error containing %q", tt.list, err, tt.wantErr)
			}
			continue
		}
		var paths []string
		for _, f := range files {
			paths = append(paths, f.Path())
		}
		if err != nil || strings.Join(paths, ",") != tt.want {
			t.Errorf("tokens.ParseTokenFiles(%q) = %v (%v), want %s", tt.list, paths, err, tt.want)
		}
	}
}

func TestJoinTokenFiles(t *testing.T) {
	const list = "accesstoken:a.b:role.team.reader,roletoken:prov:role.x"
	files, err := tokens.ParseTokenFiles(list)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokens.JoinTokenFiles(files); got != list {
		t.Errorf("JoinTokenFiles(ParseTokenFiles(%q)) = %q", list, got)
	}
}
