package tokens

import (
	"fmt"
	"path"
	"strings"
)

// TokenFilesDir is the directory of the token files under the identity
// directory: <identity dir>/tokens/<domain>/<role>.<kind>.
const TokenFilesDir = "tokens"

// TokenFile is one token the sidecar keeps as a file for apps that read
// files rather than call its API (ATHENZ_TOKEN_FILES, the SidecarProfile's
// tokenFiles, the athenz.io/token-files annotation).
type TokenFile struct {
	// Kind is KindAccessToken or KindRoleToken.
	Kind Kind
	// Target has a role: a file holds the token of one role.
	Target Target
}

// String returns the entry as the settings write it:
// "accesstoken:<domain>:role.<role>".
func (f TokenFile) String() string { return f.Kind.String() + ":" + f.Target.String() }

// Path returns the file's path relative to the identity directory,
// tokens/<domain>/<role>.<kind>; its JSON companion is Path()+".json".
// Domain and role are Athenz names, so the path stays in its directory.
func (f TokenFile) Path() string {
	return path.Join(TokenFilesDir, f.Target.Domain, f.Target.Role+"."+f.Kind.String())
}

// Key is the cache key of the file's token: the key of an API request for
// the same domain and role with no other field, so that both share it.
func (f TokenFile) Key() (Key, error) {
	if f.Kind == KindRoleToken {
		return RoleTokenKey(f.Target.Domain, f.Target.Role, "", 0, 0)
	}
	return AccessTokenKey(f.Target.Domain, f.Target.Role, "", 0)
}

// ParseTokenFiles parses a token file list: comma-separated entries
// "accesstoken:<domain>:role.<role>" or "roletoken:<domain>:role.<role>".
// Duplicates are dropped, order is kept.
func ParseTokenFiles(list string) ([]TokenFile, error) {
	var out []TokenFile
	seen := map[TokenFile]bool{}
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		kind, target, ok := strings.Cut(item, ":")
		var f TokenFile
		switch kind {
		case KindAccessToken.String():
			f.Kind = KindAccessToken
		case KindRoleToken.String():
			f.Kind = KindRoleToken
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("entry %q: want accesstoken:<domain>:role.<role> or roletoken:<domain>:role.<role>", truncate(item))
		}
		t, err := ParseTarget(target)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", truncate(item), err)
		}
		if t.Role == "" {
			return nil, fmt.Errorf("entry %q: a token file holds the token of one role: want %s:%s:role.<role>", truncate(item), kind, t.Domain)
		}
		f.Target = t
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// JoinTokenFiles writes files as a list ParseTokenFiles reads.
func JoinTokenFiles(files []TokenFile) string {
	s := make([]string, len(files))
	for i, f := range files {
		s[i] = f.String()
	}
	return strings.Join(s, ",")
}
