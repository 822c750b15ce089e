package ztsfake_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func accessTokenForm(scope string, expiresIn int, proxy string) zts.AccessTokenRequest {
	v := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if expiresIn != 0 {
		v.Set("expires_in", strconv.Itoa(expiresIn))
	}
	if proxy != "" {
		v.Set("proxy_for_principal", proxy)
	}
	return zts.AccessTokenRequest(v.Encode())
}

func TestAccessToken(t *testing.T) {
	for _, keyType := range []string{"rsa", "ec"} {
		t.Run(keyType, func(t *testing.T) {
			now, clock := fixedNow()
			s := ztsfake.NewTest(t, ztsfake.Options{KeyType: keyType, Now: clock})
			s.Grant("prov", "reader", "client.api", "user.jane")
			s.Grant("prov", "writer", "client.api")
			s.AllowProxy("client.api")
			c := newClient(t, s, "client", "api")
			rfc := true
			jwks, err := c.GetJWKList(&rfc, "")
			if err != nil {
				t.Fatalf("GetJWKList(rfc=true): %v", err)
			}
			wantAlg := map[string]string{"rsa": "RS256", "ec": "ES256"}[keyType]

			tests := []struct {
				name          string
				scope         string
				expiresIn     int
				proxy         string
				wantScp       []string
				wantSub       string
				wantProxy     string
				wantScopeResp string
				wantExpiresIn int64
				wantIDToken   bool
			}{
				{name: "one role, default lifetime", scope: "prov:role.reader", wantScp: []string{"reader"},
					wantSub: "client.api", wantExpiresIn: 3600},
				{name: "expires_in honored", scope: "prov:role.reader prov:role.writer", expiresIn: 600,
					wantScp: []string{"reader", "writer"}, wantSub: "client.api", wantExpiresIn: 600},
				{name: "expires_in capped at 30 days", scope: "prov:role.reader", expiresIn: 40 * 86400,
					wantScp: []string{"reader"}, wantSub: "client.api", wantExpiresIn: 30 * 86400},
				{name: "domain scope lists roles", scope: "prov:domain", wantScp: []string{"reader", "writer"},
					wantSub: "client.api", wantScopeResp: "prov:role.reader prov:role.writer", wantExpiresIn: 3600},
				{name: "fewer roles granted than asked", scope: "prov:role.reader prov:role.nope", wantScp: []string{"reader"},
					wantSub: "client.api", wantScopeResp: "prov:role.reader", wantExpiresIn: 3600},
				{name: "proxy for principal", scope: "prov:domain", proxy: "user.jane", wantScp: []string{"reader"},
					wantSub: "user.jane", wantProxy: "client.api", wantScopeResp: "prov:role.reader", wantExpiresIn: 3600},
				{name: "openid", scope: "openid prov:service.api prov:role.reader", wantScp: []string{"reader"},
					wantSub: "client.api", wantExpiresIn: 3600, wantIDToken: true},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					resp, err := c.PostAccessTokenRequest(accessTokenForm(tc.scope, tc.expiresIn, tc.proxy))
					if err != nil {
						t.Fatalf("PostAccessTokenRequest(%q): %v", tc.scope, err)
					}
					if resp.Token_type != "Bearer" || resp.Expires_in == nil || int64(*resp.Expires_in) != tc.wantExpiresIn {
						t.Errorf("PostAccessTokenRequest(%q): token_type %q expires_in %v, want Bearer %d",
							tc.scope, resp.Token_type, resp.Expires_in, tc.wantExpiresIn)
					}
					if resp.Scope != tc.wantScopeResp {
						t.Errorf("PostAccessTokenRequest(%q): scope %q, want %q", tc.scope, resp.Scope, tc.wantScopeResp)
					}
					p := verifyJWT(t, jwks, resp.Access_token)
					if p.header["typ"] != "at+jwt" || p.header["alg"] != wantAlg || p.header["kid"] != s.SigningKeyID() {
						t.Errorf("access token header %v, want typ at+jwt, alg %s, kid %s", p.header, wantAlg, s.SigningKeyID())
					}
					cl := p.claims
					iat, exp := int64(cl["iat"].(float64)), int64(cl["exp"].(float64))
					if iat != now.Unix() || exp-iat != tc.wantExpiresIn || int64(cl["auth_time"].(float64)) != iat {
						t.Errorf("access token iat %d exp %d auth_time %v, want iat %d and exp-iat %d", iat, exp, cl["auth_time"], now.Unix(), tc.wantExpiresIn)
					}
					var scp []string
					for _, v := range cl["scp"].([]any) {
						scp = append(scp, v.(string))
					}
					want := map[string]any{
						"sub": tc.wantSub, "uid": tc.wantSub, "client_id": tc.wantSub, "aud": "prov",
						"iss": s.URL(), "ver": float64(1), "scope": strings.Join(tc.wantScp, " "),
					}
					for k, v := range want {
						if cl[k] != v {
							t.Errorf("access token claim %s = %v, want %v", k, cl[k], v)
						}
					}
					if !slices.Equal(scp, tc.wantScp) {
						t.Errorf("access token scp %v, want %v", scp, tc.wantScp)
					}
					if got, _ := cl["proxy"].(string); got != tc.wantProxy {
						t.Errorf("access token proxy %q, want %q", got, tc.wantProxy)
					}
					if jti, _ := cl["jti"].(string); len(jti) != 36 {
						t.Errorf("access token jti %q, want a UUID", jti)
					}
					if cnf, _ := cl["cnf"].(map[string]any); cnf["x5t#S256"] == nil {
						t.Errorf("access token cnf %v, want x5t#S256 of the client certificate", cl["cnf"])
					}
					if (resp.Id_token != "") != tc.wantIDToken {
						t.Fatalf("id_token %q, want present=%v", resp.Id_token, tc.wantIDToken)
					}
					if tc.wantIDToken {
						id := verifyJWT(t, jwks, resp.Id_token)
						if id.claims["aud"] != "prov.api" || id.claims["sub"] != "client.api" {
							t.Errorf("id token claims %v, want aud prov.api, sub client.api", id.claims)
						}
					}
				})
			}
			if got := s.CallsFor(ztsfake.EndpointAccessToken, "prov:role.nope prov:role.reader"); got != 1 {
				t.Errorf("CallsFor(accesstoken, sorted scope) = %d, want 1", got)
			}
		})
	}
}

func TestAccessTokenErrors(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")
	other := newClient(t, s, "other", "svc")
	s.AllowProxy("proxy.svc")
	proxy := newClient(t, s, "proxy", "svc")

	tests := []struct {
		name     string
		client   zts.ZTSClient
		form     zts.AccessTokenRequest
		wantCode int
		wantMsg  string
	}{
		{name: "openid with proxy_for_principal", client: proxy,
			form:     accessTokenForm("openid prov:service.api prov:role.reader", 0, "user.jane"),
			wantCode: 400, wantMsg: "proxy_for_principal"},
		{name: "grant type", client: c, form: "grant_type=password&scope=prov%3Adomain", wantCode: 400, wantMsg: "grant_type"},
		{name: "no scope", client: c, form: "grant_type=client_credentials", wantCode: 400, wantMsg: "scope"},
		{name: "empty body", client: c, form: "", wantCode: 400, wantMsg: "Empty request body"},
		{name: "two domains", client: c, form: accessTokenForm("prov:role.reader other:role.reader", 0, ""), wantCode: 400, wantMsg: "multiple domains"},
		{name: "no domain in scope", client: c, form: accessTokenForm("openid", 0, ""), wantCode: 400, wantMsg: "no domain"},
		{name: "openid without service", client: c, form: accessTokenForm("openid prov:role.reader", 0, ""), wantCode: 400, wantMsg: "audience"},
		{name: "expires_in not a number", client: c, form: "grant_type=client_credentials&scope=prov%3Adomain&expires_in=soon", wantCode: 400, wantMsg: "expires_in"},
		{name: "bad role name", client: c, form: accessTokenForm("prov:role.re..ader", 0, ""), wantCode: 400, wantMsg: "role"},
		{name: "proxy not authorized", client: c, form: accessTokenForm("prov:role.reader", 0, "user.jane"), wantCode: 403, wantMsg: "not authorized for proxy"},
		{name: "unknown domain", client: c, form: accessTokenForm("nope:domain", 0, ""), wantCode: 404, wantMsg: "No such domain: nope"},
		{name: "no role", client: other, form: accessTokenForm("prov:role.reader", 0, ""), wantCode: 403, wantMsg: "other.svc is not included"},
		{name: "unauthenticated", client: anonClient(t, s), form: accessTokenForm("prov:role.reader", 0, ""), wantCode: 401, wantMsg: "authentication required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.PostAccessTokenRequest(tc.form)
			wantResourceError(t, "PostAccessTokenRequest("+string(tc.form)+")", err, tc.wantCode, tc.wantMsg)
		})
	}
}

func TestJWKS(t *testing.T) {
	tests := []struct {
		name    string
		keyType string
		rfc     *bool
		wantKty string
		wantCrv string
	}{
		{name: "rsa", keyType: "rsa", rfc: new(true), wantKty: "RSA"},
		{name: "ec rfc", keyType: "ec", rfc: new(true), wantKty: "EC", wantCrv: "P-256"},
		{name: "ec legacy curve name", keyType: "ec", rfc: nil, wantKty: "EC", wantCrv: "prime256v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ztsfake.NewTest(t, ztsfake.Options{KeyType: tc.keyType})
			got, err := anonClient(t, s).GetJWKList(tc.rfc, "")
			if err != nil {
				t.Fatalf("GetJWKList: %v", err)
			}
			if len(got.Keys) != 1 {
				t.Fatalf("GetJWKList: %d keys, want 1", len(got.Keys))
			}
			k := got.Keys[0]
			if k.Kty != tc.wantKty || k.Crv != tc.wantCrv || k.Kid != s.SigningKeyID() || k.Use != "sig" {
				t.Errorf("GetJWKList: key %+v, want kty %s crv %q kid %s use sig", *k, tc.wantKty, tc.wantCrv, s.SigningKeyID())
			}
		})
	}
}
