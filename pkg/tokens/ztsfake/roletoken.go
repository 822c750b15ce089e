package ztsfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// roleTokenKey is "<domain>:<sorted roles>" (see the package doc).
func roleTokenKey(r *http.Request, _ []byte) string {
	var roles []string
	for role := range strings.SplitSeq(r.URL.Query().Get("role"), ",") {
		if role = strings.TrimSpace(role); role != "" {
			roles = append(roles, role)
		}
	}
	slices.Sort(roles)
	return r.PathValue("domain") + ":" + strings.Join(slices.Compact(roles), ",")
}

// handleRoleToken serves GET /domain/{domain}/token?role=&minExpiryTime=&maxExpiryTime=&proxyForPrincipal=.
func (s *Server) handleRoleToken(w http.ResponseWriter, r *http.Request, _ []byte) error {
	const caller = "getRoleToken"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	domain := strings.ToLower(r.PathValue("domain"))
	if err := tokens.ValidateDomain(domain); err != nil {
		return badRequest("domain: %v", err)
	}
	q := r.URL.Query()
	requested, err := tokens.ParseRoles(strings.ToLower(q.Get("role")))
	if err != nil {
		return badRequest("role: %v", err)
	}
	minExpiry, err := optionalInt32(q, "minExpiryTime")
	if err != nil {
		return err
	}
	maxExpiry, err := optionalInt32(q, "maxExpiryTime")
	if err != nil {
		return err
	}
	proxyFor := strings.ToLower(q.Get("proxyForPrincipal"))
	if proxyFor != "" {
		if err := tokens.ValidateCompoundName(proxyFor); err != nil {
			return badRequest("proxyForPrincipal: %v", err)
		}
		if !s.isProxyUser(p.name) {
			return forbidden("%s: Principal: %s not authorized for proxy role token request", caller, p.name)
		}
	}
	if !s.domainExists(domain) {
		return notFound("%s: No such domain: %s", caller, domain)
	}
	roles := s.rolesFor(domain, p.name, requested)
	if len(roles) == 0 {
		return forbidden("%s", tokenErrorMessage(caller, p.name, domain, requested))
	}
	principalName, proxyUser := p.name, ""
	if proxyFor != "" {
		roles = intersect(roles, s.rolesFor(domain, proxyFor, requested))
		if len(roles) == 0 {
			return forbidden("%s", tokenErrorMessage(caller, proxyFor, domain, requested))
		}
		principalName, proxyUser = proxyFor, p.name
	}

	lifetime := roleTokenLifetime(minExpiry, maxExpiry, s.opts.RoleTokenDefault, s.opts.MaxTokenLifetime)
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("generating salt: %w", err)
	}
	now := s.now()
	expires := now.Add(lifetime).Unix()
	var b strings.Builder
	fmt.Fprintf(&b, "v=Z1;d=%s;r=%s", domain, strings.Join(roles, ","))
	if len(requested) == 0 {
		b.WriteString(";c=1") // the complete role set of the domain
	}
	fmt.Fprintf(&b, ";p=%s", principalName)
	if proxyUser != "" {
		fmt.Fprintf(&b, ";proxy=%s", proxyUser)
	}
	fmt.Fprintf(&b, ";a=%s;t=%d;e=%d;k=%s", hex.EncodeToString(salt), now.Unix(), expires, s.key.id)
	if ip := clientIP(r); ip != "" {
		fmt.Fprintf(&b, ";i=%s", ip)
	}
	sig, err := s.key.signAthenz(b.String())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": b.String() + ";s=" + sig, "expiryTime": expires})
	return nil
}

// roleTokenLifetime is ZTS's rule: maxExpiryTime if positive, else
// minExpiryTime if above the default, else the default; capped at max.
// Both request values are seconds.
func roleTokenLifetime(minExpiry, maxExpiry *int32, def, max time.Duration) time.Duration {
	d := def
	switch {
	case maxExpiry != nil && *maxExpiry > 0:
		d = time.Duration(*maxExpiry) * time.Second
	case minExpiry != nil && time.Duration(*minExpiry)*time.Second > def:
		d = time.Duration(*minExpiry) * time.Second
	}
	return min(d, max)
}

// tokenErrorMessage is ZTS's 403 message for a principal without roles.
func tokenErrorMessage(caller, principal, domain string, requested []string) string {
	what := "any role"
	if len(requested) > 0 {
		what = "the requested role(s)"
	}
	return fmt.Sprintf("%s: principal %s is not included in %s in domain %s", caller, principal, what, domain)
}

// optionalInt32 parses an optional int32 query parameter; a bad value is a
// 400 that names it.
func optionalInt32(q url.Values, name string) (*int32, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return nil, badRequest("%s: %q is not a 32-bit integer", name, v)
	}
	n32 := int32(n)
	return &n32, nil
}
