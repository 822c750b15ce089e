package tokens

import (
	"fmt"
	"strings"
)

// Athenz name rules (from the ZTS RDL):
//
//	SimpleName   [a-zA-Z0-9_][a-zA-Z0-9_-]*
//	CompoundName SimpleName('.'SimpleName)*
//	EntityList   CompoundName(','CompoundName)*
//
// Domains, roles and principals are compound names; a service is a simple
// name. ZTS rejects longer names, so we do too rather than pass on a request
// that can only fail.
const maxNameLength = 256

// ValidateSimpleName reports whether s is an Athenz SimpleName.
func ValidateSimpleName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > maxNameLength {
		return fmt.Errorf("%q is longer than %d characters", truncate(s), maxNameLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '-' && i > 0:
		default:
			return fmt.Errorf("%q is not an Athenz name: character %q at %d (allowed: letters, digits, '_', and '-' after the first character)", truncate(s), c, i)
		}
	}
	return nil
}

// ValidateCompoundName reports whether s is an Athenz CompoundName: simple
// names joined by '.'. Domains, roles and principal names are compound names.
func ValidateCompoundName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > maxNameLength {
		return fmt.Errorf("%q is longer than %d characters", truncate(s), maxNameLength)
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return fmt.Errorf("%q is not an Athenz name: empty part between dots", truncate(s))
		}
		if err := ValidateSimpleName(part); err != nil {
			return fmt.Errorf("%q is not an Athenz name: %w", truncate(s), unwrapQuoted(err, part))
		}
	}
	return nil
}

// ValidateDomain reports whether s is a valid Athenz domain name.
func ValidateDomain(s string) error { return ValidateCompoundName(s) }

// ValidateService reports whether s is a valid Athenz service name (the part
// after the domain, a SimpleName).
func ValidateService(s string) error { return ValidateSimpleName(s) }

// ParseRoles splits a comma-separated role list, validates every role as a
// compound name, and returns the roles sorted and without duplicates, so that
// requests that differ only in role order share a cache entry. An empty list
// is valid and means "all roles the caller has in the domain".
func ParseRoles(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var roles []string
	for r := range strings.SplitSeq(list, ",") {
		r = strings.TrimSpace(r)
		if err := ValidateCompoundName(r); err != nil {
			if r == "" {
				return nil, fmt.Errorf("empty role in list %q", truncate(list))
			}
			return nil, err
		}
		roles = append(roles, r)
	}
	return sortedUnique(roles), nil
}

func sortedUnique(s []string) []string {
	if len(s) < 2 {
		return s
	}
	// Insertion sort: role lists are short and this keeps the import list small.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// truncate keeps error messages short when a caller sends a huge name.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// unwrapQuoted drops the repeated "%q is not an Athenz name:" prefix of a
// part's error so that the compound name's error reads once.
func unwrapQuoted(err error, part string) error {
	msg := err.Error()
	prefix := fmt.Sprintf("%q is not an Athenz name: ", truncate(part))
	if rest, ok := strings.CutPrefix(msg, prefix); ok {
		return fmt.Errorf("part %q: %s", truncate(part), rest)
	}
	return fmt.Errorf("part %q: %s", truncate(part), msg)
}
