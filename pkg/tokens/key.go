package tokens

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the type of a token.
type Kind uint8

// The token kinds the cache holds.
const (
	KindRoleToken Kind = iota + 1
	KindAccessToken
)

func (k Kind) String() string {
	switch k {
	case KindRoleToken:
		return "roletoken"
	case KindAccessToken:
		return "accesstoken"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MaxTokenLifetime is the longest lifetime a caller may ask for; ZTS caps
// tokens at 30 days.
const MaxTokenLifetime = 30 * 24 * time.Hour

// Key identifies one cached token. Build it with RoleTokenKey or
// AccessTokenKey, which validate the names and sort the roles, so requests
// that differ only in role order share an entry.
type Key struct {
	Kind              Kind
	Domain            string
	Roles             string // sorted, unique, comma-joined; "" means all roles in Domain
	ProxyForPrincipal string
	// MinExpiry and MaxExpiry are the requested lifetime bounds (role
	// tokens: min_expiry and max_expiry; access tokens: MaxExpiry is the
	// requested expiry). Zero means ZTS's default.
	MinExpiry, MaxExpiry time.Duration
}

// RoleTokenKey validates a role token request and returns its cache key.
// roles is a comma-separated list (empty: all roles). Errors are
// *FieldError naming the field.
func RoleTokenKey(domain, roles, proxyForPrincipal string, minExpiry, maxExpiry time.Duration) (Key, error) {
	k, err := newKey(KindRoleToken, domain, roles, proxyForPrincipal)
	if err != nil {
		return Key{}, err
	}
	if err := validateLifetime("min_expiry", minExpiry); err != nil {
		return Key{}, err
	}
	if err := validateLifetime("max_expiry", maxExpiry); err != nil {
		return Key{}, err
	}
	if minExpiry > 0 && maxExpiry > 0 && minExpiry > maxExpiry {
		return Key{}, &FieldError{Field: "min_expiry", Err: fmt.Errorf("%d s is more than max_expiry %d s", int64(minExpiry/time.Second), int64(maxExpiry/time.Second))}
	}
	k.MinExpiry, k.MaxExpiry = minExpiry, maxExpiry
	return k, nil
}

// AccessTokenKey validates an access token request and returns its cache
// key. roles is a comma-separated list (empty: the domain scope).
func AccessTokenKey(domain, roles, proxyForPrincipal string, expiry time.Duration) (Key, error) {
	k, err := newKey(KindAccessToken, domain, roles, proxyForPrincipal)
	if err != nil {
		return Key{}, err
	}
	if err := validateLifetime("expiry", expiry); err != nil {
		return Key{}, err
	}
	k.MaxExpiry = expiry
	return k, nil
}

func newKey(kind Kind, domain, roles, proxy string) (Key, error) {
	// ZTS lower-cases every name, so "Sports" and "sports" are one token
	// and must be one cache entry.
	domain, roles, proxy = strings.ToLower(domain), strings.ToLower(roles), strings.ToLower(proxy)
	if domain == "" {
		return Key{}, &FieldError{Field: "domain", Err: fmt.Errorf("is required")}
	}
	if err := ValidateDomain(domain); err != nil {
		return Key{}, &FieldError{Field: "domain", Err: err}
	}
	list, err := ParseRoles(roles)
	if err != nil {
		return Key{}, &FieldError{Field: "role", Err: err}
	}
	if proxy != "" {
		if err := ValidateCompoundName(proxy); err != nil {
			return Key{}, &FieldError{Field: "proxy_for_principal", Err: err}
		}
	}
	return Key{Kind: kind, Domain: domain, Roles: strings.Join(list, ","), ProxyForPrincipal: proxy}, nil
}

func validateLifetime(field string, d time.Duration) error {
	switch {
	case d < 0:
		return &FieldError{Field: field, Err: fmt.Errorf("must not be negative")}
	case d > MaxTokenLifetime:
		return &FieldError{Field: field, Err: fmt.Errorf("%d s is more than the 30-day maximum", int64(d/time.Second))}
	case d > 0 && d < time.Second:
		return &FieldError{Field: field, Err: fmt.Errorf("must be at least 1 s")}
	}
	return nil
}

// RoleList returns the key's roles as a slice (nil for all roles).
func (k Key) RoleList() []string {
	if k.Roles == "" {
		return nil
	}
	return strings.Split(k.Roles, ",")
}

// Scope returns the access token scope for the key: "<d>:role.<r>" for
// each role, or "<d>:domain" when no role is named.
func (k Key) Scope() string {
	if k.Roles == "" {
		return k.Domain + ":domain"
	}
	var b strings.Builder
	for i, r := range k.RoleList() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k.Domain)
		b.WriteString(":role.")
		b.WriteString(r)
	}
	return b.String()
}

// Token is a role token or access token with its expiry.
type Token struct {
	Value string
	// Expiry is when the token stops being valid.
	Expiry time.Time
	// Obtained is when the request for the token was sent; Expiry minus
	// Obtained is the lifetime the cache's safety margin is computed from.
	Obtained time.Time
	// Scope is the scope ZTS granted for an access token, when it said.
	Scope string
}

// Lifetime is the token's total lifetime as obtained.
func (t Token) Lifetime() time.Duration { return t.Expiry.Sub(t.Obtained) }
