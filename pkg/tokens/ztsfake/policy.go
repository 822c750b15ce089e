package ztsfake

import (
	"slices"
	"strings"
)

// adminRole exists in every Athenz domain.
const adminRole = "admin"

// AddDomain creates domain (lower-cased) with its "admin" role and no
// members, if it does not exist. Requests for unknown domains answer 404
// unless Options.AllowAll is set.
func (s *Server) AddDomain(domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.domainLocked(strings.ToLower(domain))
}

// Grant adds principals to role in domain, creating both if needed. Names
// are lower-cased, as ZMS stores them, and not validated. A principal is
// "domain.service", "user.name", or a wildcard "domain.*" or "*".
func (s *Server) Grant(domain, role string, principals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	roles := s.domainLocked(strings.ToLower(domain))
	role = strings.ToLower(role)
	members := roles[role]
	if members == nil {
		members = map[string]bool{}
		roles[role] = members
	}
	for _, p := range principals {
		members[strings.ToLower(p)] = true
	}
}

// AllowProxy makes principals authorized proxy users: they may ask for role
// and access tokens on behalf of another principal (proxyForPrincipal,
// proxy_for_principal), as ZTS's authorized proxy users. With
// Options.AllowAll everyone may.
func (s *Server) AllowProxy(principals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range principals {
		s.proxyUsers[strings.ToLower(p)] = true
	}
}

// domainLocked returns the roles of domain, creating it. mu must be held.
func (s *Server) domainLocked(domain string) map[string]map[string]bool {
	roles := s.domains[domain]
	if roles == nil {
		roles = map[string]map[string]bool{adminRole: {}}
		s.domains[domain] = roles
	}
	return roles
}

// domainExists reports whether domain exists (always, with AllowAll).
func (s *Server) domainExists(domain string) bool {
	if s.opts.AllowAll {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.domains[domain]
	return ok
}

// isProxyUser reports whether p may ask for tokens on behalf of others.
func (s *Server) isProxyUser(p string) bool {
	if s.opts.AllowAll {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxyUsers[p]
}

// rolesFor returns, sorted, the roles of domain that principal has among
// requested, or among all roles of the domain if requested is empty. With
// AllowAll the principal has every requested role, and "all roles" are
// the roles the domain has (at least "admin").
func (s *Server) rolesFor(domain, principal string, requested []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	roles := s.domains[domain]
	if s.opts.AllowAll {
		if len(requested) > 0 {
			return slices.Sorted(slices.Values(requested))
		}
		all := []string{adminRole}
		for r := range roles {
			if r != adminRole {
				all = append(all, r)
			}
		}
		slices.Sort(all)
		return all
	}
	if roles == nil {
		return nil
	}
	var out []string
	check := func(role string) {
		for m := range roles[role] {
			if memberMatches(m, principal) {
				out = append(out, role)
				return
			}
		}
	}
	if len(requested) > 0 {
		for _, r := range requested {
			check(r)
		}
	} else {
		for r := range roles {
			check(r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// memberMatches reports whether a role member (a name or an Athenz
// wildcard ending in '*') covers principal.
func memberMatches(member, principal string) bool {
	if prefix, ok := strings.CutSuffix(member, "*"); ok {
		return strings.HasPrefix(principal, prefix)
	}
	return member == principal
}

// intersect returns the elements of a (sorted) that are also in b.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
