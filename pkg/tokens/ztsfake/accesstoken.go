package ztsfake

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// idTokenMaxLifetime caps id tokens, as ZTS (12 h).
const idTokenMaxLifetime = 12 * time.Hour

// accessTokenKey is the scope split at spaces, sorted (see the package doc).
func accessTokenKey(_ *http.Request, body []byte) string {
	form, _ := url.ParseQuery(string(body))
	items := strings.Fields(form.Get("scope"))
	slices.Sort(items)
	return strings.Join(items, " ")
}

// accessTokenRequest is a parsed scope, with ZTS's rules: one domain;
// "<d>:domain" asks for all roles and overrides role entries;
// "openid" needs "<d>:service.<s>"; unknown entries are skipped.
type accessTokenRequest struct {
	domain      string
	roles       []string // nil: all roles
	service     string
	openid      bool
	scopeAnswer bool // "<d>:domain" was asked: the answer lists the roles
}

func parseScope(scope string) (*accessTokenRequest, error) {
	req := &accessTokenRequest{}
	setDomain := func(d string) error {
		if req.domain != "" && req.domain != d {
			return errors.New("multiple domains in scope")
		}
		req.domain = d
		return nil
	}
	var roles []string
	for item := range strings.FieldsSeq(scope) {
		if item == "openid" {
			req.openid = true
			continue
		}
		if d, svc, ok := strings.Cut(item, ":service."); ok {
			if err := setDomain(d); err != nil {
				return nil, err
			}
			if req.service != "" && req.service != svc {
				return nil, errors.New("multiple services in scope")
			}
			req.service = svc
			continue
		}
		if d, ok := strings.CutSuffix(item, ":domain"); ok {
			if err := setDomain(d); err != nil {
				return nil, err
			}
			req.scopeAnswer = true
			continue
		}
		if d, role, ok := strings.Cut(item, ":role."); ok {
			if err := setDomain(d); err != nil {
				return nil, err
			}
			roles = append(roles, role)
		}
	}
	if req.domain == "" {
		return nil, errors.New("no domain in scope")
	}
	if !req.scopeAnswer && len(roles) > 0 {
		slices.Sort(roles)
		req.roles = slices.Compact(roles)
	}
	if req.openid && req.service == "" {
		return nil, errors.New("no audience service name (<domain>:service.<service>) for openid scope")
	}
	return req, nil
}

// accessTokenClaims are the claims of a ZTS access token.
type accessTokenClaims struct {
	Sub      string            `json:"sub"`
	Iat      int64             `json:"iat"`
	Exp      int64             `json:"exp"`
	Iss      string            `json:"iss"`
	Aud      string            `json:"aud"`
	AuthTime int64             `json:"auth_time"`
	Ver      int               `json:"ver"`
	Scp      []string          `json:"scp"`
	Scope    string            `json:"scope"`
	UID      string            `json:"uid"`
	ClientID string            `json:"client_id"`
	JTI      string            `json:"jti"`
	Proxy    string            `json:"proxy,omitempty"`
	Cnf      map[string]string `json:"cnf,omitempty"`
}

type idTokenClaims struct {
	Sub      string `json:"sub"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
	Iss      string `json:"iss"`
	Aud      string `json:"aud"`
	AuthTime int64  `json:"auth_time"`
	Ver      int    `json:"ver"`
}

// handleAccessToken serves POST /oauth2/token (form: grant_type, scope,
// expires_in, proxy_for_principal).
func (s *Server) handleAccessToken(w http.ResponseWriter, r *http.Request, body []byte) error {
	const caller = "postAccessTokenRequest"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return badRequest("Empty request body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return badRequest("request body is not a url-encoded form: %v", err)
	}
	if gt := strings.ToLower(form.Get("grant_type")); gt != "client_credentials" {
		return badRequest("grant_type: Invalid grant request: %q (want client_credentials)", gt)
	}
	scope := strings.ToLower(form.Get("scope"))
	if strings.TrimSpace(scope) == "" {
		return badRequest("scope: Invalid request: no scope provided")
	}
	expiresIn := 0
	if v := form.Get("expires_in"); v != "" {
		if expiresIn, err = strconv.Atoi(v); err != nil {
			return badRequest("expires_in: %q is not an integer", v)
		}
	}
	proxyFor := strings.ToLower(form.Get("proxy_for_principal"))
	if proxyFor != "" {
		if err := tokens.ValidateCompoundName(proxyFor); err != nil {
			return badRequest("proxy_for_principal: %v", err)
		}
		if !s.isProxyUser(p.name) {
			return forbidden("%s: Principal: %s not authorized for proxy access token request", caller, p.name)
		}
	}
	req, err := parseScope(scope)
	if err != nil {
		return badRequest("scope: %v", err)
	}
	if err := tokens.ValidateDomain(req.domain); err != nil {
		return badRequest("scope: domain: %v", err)
	}
	for _, role := range req.roles {
		if err := tokens.ValidateCompoundName(role); err != nil {
			return badRequest("scope: role: %v", err)
		}
	}
	if req.openid {
		if proxyFor != "" {
			return badRequest("proxy_for_principal: Proxy Principal cannot request id tokens (scope has openid)")
		}
		if err := tokens.ValidateSimpleName(req.service); err != nil {
			return badRequest("scope: service: %v", err)
		}
	}
	if !s.domainExists(req.domain) {
		return notFound("%s: No such domain: %s", caller, req.domain)
	}
	roles := s.rolesFor(req.domain, p.name, req.roles)
	if len(roles) == 0 {
		return forbidden("%s", tokenErrorMessage(caller, p.name, req.domain, req.roles))
	}
	principalName, proxyUser := p.name, ""
	if proxyFor != "" {
		roles = intersect(roles, s.rolesFor(req.domain, proxyFor, req.roles))
		if len(roles) == 0 {
			return forbidden("%s", tokenErrorMessage(caller, proxyFor, req.domain, req.roles))
		}
		principalName, proxyUser = proxyFor, p.name
	}

	lifetime := s.opts.AccessTokenDefault
	if expiresIn > 0 {
		lifetime = time.Duration(expiresIn) * time.Second
	}
	lifetime = min(lifetime, s.opts.MaxTokenLifetime)
	iat := s.now().Unix()
	jti, err := newUUID()
	if err != nil {
		return err
	}
	claims := accessTokenClaims{
		Sub: principalName, Iat: iat, Exp: iat + int64(lifetime/time.Second),
		Iss: s.url, Aud: req.domain, AuthTime: iat, Ver: 1,
		Scp: roles, Scope: strings.Join(roles, " "),
		UID: principalName, ClientID: principalName, JTI: jti, Proxy: proxyUser,
	}
	if p.cert != nil {
		sum := sha256.Sum256(p.cert.Raw)
		claims.Cnf = map[string]string{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}
	}
	accessToken, err := s.key.signJWT("at+jwt", claims)
	if err != nil {
		return err
	}
	resp := map[string]any{
		"access_token": accessToken,
		"token_type":   "Bearer",
		"expires_in":   int64(lifetime / time.Second),
	}
	if req.openid {
		idLifetime := min(lifetime, idTokenMaxLifetime)
		idToken, err := s.key.signJWT("", idTokenClaims{
			Sub: principalName, Iat: iat, Exp: iat + int64(idLifetime/time.Second),
			Iss: s.url, Aud: req.domain + "." + req.service, AuthTime: iat, Ver: 1,
		})
		if err != nil {
			return err
		}
		resp["id_token"] = idToken
	}
	if req.scopeAnswer || (req.roles != nil && len(req.roles) != len(roles)) {
		items := make([]string, 0, len(roles)+1)
		for _, role := range roles {
			items = append(items, req.domain+":role."+role)
		}
		if req.openid {
			items = append(items, "openid")
		}
		resp["scope"] = strings.Join(items, " ")
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating jti: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}
