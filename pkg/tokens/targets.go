package tokens

import (
	"fmt"
	"strings"
)

// Target names what a token is for: a role in a domain, or (Role == "")
// every role the caller has in the domain. It is written the way Athenz
// writes access token scopes: "<domain>:role.<role>" or "<domain>:domain".
type Target struct {
	Domain string
	Role   string
}

// String returns the target in its scope form.
func (t Target) String() string {
	if t.Role == "" {
		return t.Domain + ":domain"
	}
	return t.Domain + ":role." + t.Role
}

// ParseTarget parses one "<domain>:role.<role>" or "<domain>:domain".
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	domain, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Target{}, fmt.Errorf("target %q: want <domain>:role.<role> or <domain>:domain", truncate(s))
	}
	if err := ValidateDomain(domain); err != nil {
		return Target{}, fmt.Errorf("target %q: domain: %w", truncate(s), err)
	}
	if rest == "domain" {
		return Target{Domain: domain}, nil
	}
	role, ok := strings.CutPrefix(rest, "role.")
	if !ok {
		return Target{}, fmt.Errorf("target %q: after ':' want role.<role> or domain", truncate(s))
	}
	if err := ValidateCompoundName(role); err != nil {
		return Target{}, fmt.Errorf("target %q: role: %w", truncate(s), err)
	}
	return Target{Domain: domain, Role: role}, nil
}

// ParseTargets parses a comma-separated target list such as
// "prov:role.reader,other:domain". Empty input gives no targets; duplicates
// are dropped, order is kept.
func ParseTargets(list string) ([]Target, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []Target
	seen := map[Target]bool{}
	for item := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(item) == "" {
			return nil, fmt.Errorf("empty target in list %q", truncate(list))
		}
		t, err := ParseTarget(item)
		if err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}
