package ztsfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestRoleToken(t *testing.T) {
	for _, keyType := range []string{"rsa", "ec"} {
		t.Run(keyType, func(t *testing.T) {
			now, clock := fixedNow()
			s := ztsfake.NewTest(t, ztsfake.Options{KeyType: keyType, Now: clock})
			s.Grant("prov", "reader", "client.api")
			s.Grant("prov", "writer", "client.*")
			s.Grant("prov", "other", "someone.else")
			c := newClient(t, s, "client", "api")
			verifier, err := zmssvctoken.NewVerifier(s.SigningPublicKeyPEM())
			if err != nil {
				t.Fatalf("NewVerifier(SigningPublicKeyPEM()): %v", err)
			}

			tests := []struct {
				name         string
				roles        string
				min, max     *int32
				wantRoles    string
				wantComplete bool
				wantLifetime time.Duration
			}{
				{name: "one role, default lifetime", roles: "reader", wantRoles: "reader", wantLifetime: 2 * time.Hour},
				{name: "roles come back sorted", roles: "writer,reader", wantRoles: "reader,writer", wantLifetime: 2 * time.Hour},
				{name: "all roles of the domain", roles: "", wantRoles: "reader,writer", wantComplete: true, wantLifetime: 2 * time.Hour},
				{name: "only granted roles of those asked", roles: "reader,other", wantRoles: "reader", wantLifetime: 2 * time.Hour},
				{name: "max wins over min", roles: "reader", min: int32p(100), max: int32p(600), wantRoles: "reader", wantLifetime: 600 * time.Second},
				{name: "min below default is ignored", roles: "reader", min: int32p(600), wantRoles: "reader", wantLifetime: 2 * time.Hour},
				{name: "min above default", roles: "reader", min: int32p(3 * 3600), wantRoles: "reader", wantLifetime: 3 * time.Hour},
				{name: "capped at 30 days", roles: "reader", max: int32p(40 * 24 * 3600), wantRoles: "reader", wantLifetime: 30 * 24 * time.Hour},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := c.GetRoleToken("prov", zts.EntityList(tc.roles), tc.min, tc.max, "")
					if err != nil {
						t.Fatalf("GetRoleToken(prov, %q): %v", tc.roles, err)
					}
					fields, unsigned, sig := tokenFields(t, got.Token)
					want := map[string]string{
						"v": "Z1", "d": "prov", "r": tc.wantRoles, "p": "client.api",
						"t": strconv.FormatInt(now.Unix(), 10),
						"e": strconv.FormatInt(now.Add(tc.wantLifetime).Unix(), 10),
						"k": s.SigningKeyID(), "i": "127.0.0.1",
					}
					if tc.wantComplete {
						want["c"] = "1"
					}
					for k, v := range want {
						if fields[k] != v {
							t.Errorf("GetRoleToken(prov, %q): field %s=%q, want %q (token %q)", tc.roles, k, fields[k], v, got.Token)
						}
					}
					if _, ok := fields["c"]; ok && !tc.wantComplete {
						t.Errorf("GetRoleToken(prov, %q): has c=, want none", tc.roles)
					}
					if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fields["a"]) {
						t.Errorf("GetRoleToken: salt a=%q, want 16 hex digits", fields["a"])
					}
					if got.ExpiryTime != now.Add(tc.wantLifetime).Unix() {
						t.Errorf("GetRoleToken: expiryTime %d, want %d", got.ExpiryTime, now.Add(tc.wantLifetime).Unix())
					}
					if err := verifier.Verify(unsigned, sig); err != nil {
						t.Errorf("GetRoleToken: signature does not verify with SigningPublicKeyPEM: %v", err)
					}
				})
			}
			if got := s.CallsFor(ztsfake.EndpointRoleToken, "prov:reader,writer"); got != 1 {
				t.Errorf("CallsFor(roletoken, prov:reader,writer) = %d, want 1 (the request was writer,reader)", got)
			}
			if got := s.CallsFor(ztsfake.EndpointRoleToken, "prov:"); got != 1 {
				t.Errorf("CallsFor(roletoken, prov:) = %d, want 1", got)
			}
		})
	}
}

func TestRoleTokenProxy(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api", "user.jane")
	s.Grant("prov", "writer", "client.api")
	c := newClient(t, s, "client", "api")

	_, err := c.GetRoleToken("prov", "reader", nil, nil, "user.jane")
	wantResourceError(t, "GetRoleToken(proxy, not authorized)", err, http.StatusForbidden, "not authorized for proxy")

	s.AllowProxy("client.api")
	got, err := c.GetRoleToken("prov", "", nil, nil, "user.jane")
	if err != nil {
		t.Fatalf("GetRoleToken(proxy for user.jane): %v", err)
	}
	fields, _, _ := tokenFields(t, got.Token)
	if fields["p"] != "user.jane" || fields["proxy"] != "client.api" || fields["r"] != "reader" {
		t.Errorf("GetRoleToken(proxy): p=%q proxy=%q r=%q, want user.jane, client.api, reader (only the roles both have)",
			fields["p"], fields["proxy"], fields["r"])
	}
	_, err = c.GetRoleToken("prov", "writer", nil, nil, "user.jane")
	wantResourceError(t, "GetRoleToken(proxy, role the proxied user lacks)", err, http.StatusForbidden, "user.jane is not included")
}

func TestRoleTokenErrors(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	s.AddDomain("empty")
	c := newClient(t, s, "client", "api")
	anon := anonClient(t, s)

	tests := []struct {
		name     string
		client   zts.ZTSClient
		domain   string
		roles    string
		wantCode int
		wantMsg  string
	}{
		{name: "unknown domain", client: c, domain: "nope", roles: "reader", wantCode: 404, wantMsg: "No such domain: nope"},
		{name: "role not granted", client: c, domain: "prov", roles: "writer", wantCode: 403, wantMsg: "client.api is not included in the requested role(s) in domain prov"},
		{name: "no role in domain", client: c, domain: "empty", roles: "", wantCode: 403, wantMsg: "not included in any role"},
		{name: "bad role name", client: c, domain: "prov", roles: "rea der", wantCode: 400, wantMsg: "role:"},
		{name: "bad domain name", client: c, domain: "pr%20ov", roles: "reader", wantCode: 400, wantMsg: "domain:"},
		{name: "unauthenticated", client: anon, domain: "prov", roles: "reader", wantCode: 401, wantMsg: "authentication required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.GetRoleToken(zts.DomainName(tc.domain), zts.EntityList(tc.roles), nil, nil, "")
			wantResourceError(t, "GetRoleToken("+tc.domain+", "+tc.roles+")", err, tc.wantCode, tc.wantMsg)
		})
	}
}

// TestRoleTokenRawErrors checks the wire format of errors the typed client
// cannot produce.
func TestRoleTokenRawErrors(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	tr, err := s.IdentityTransport("client", "api")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)

	tests := []struct {
		name     string
		method   string
		path     string
		wantCode int
		wantMsg  string
	}{
		{name: "minExpiryTime not a number", method: "GET", path: "/domain/prov/token?role=reader&minExpiryTime=soon", wantCode: 400, wantMsg: "minExpiryTime"},
		{name: "maxExpiryTime overflows int32", method: "GET", path: "/domain/prov/token?role=reader&maxExpiryTime=99999999999", wantCode: 400, wantMsg: "maxExpiryTime"},
		{name: "bad proxyForPrincipal", method: "GET", path: "/domain/prov/token?role=reader&proxyForPrincipal=a..b", wantCode: 400, wantMsg: "proxyForPrincipal"},
		{name: "wrong method", method: "POST", path: "/domain/prov/token", wantCode: 405, wantMsg: "not allowed"},
		{name: "unknown path", method: "GET", path: "/nothing/here", wantCode: 404, wantMsg: "no ZTS endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, s.URL()+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var got struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%s %s: body %q is not {code,message}: %v", tc.method, tc.path, body, err)
			}
			if resp.StatusCode != tc.wantCode || got.Code != tc.wantCode || !regexp.MustCompile(regexp.QuoteMeta(tc.wantMsg)).MatchString(got.Message) {
				t.Errorf("%s %s: status %d body %s, want %d with code %d and message containing %q",
					tc.method, tc.path, resp.StatusCode, body, tc.wantCode, tc.wantCode, tc.wantMsg)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: Content-Type %q, want application/json", tc.method, tc.path, ct)
			}
		})
	}
}

func TestAllowAll(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{AllowAll: true})
	c := newClient(t, s, "any", "svc")
	got, err := c.GetRoleToken("whatever.domain", "role1,role2", nil, nil, "")
	if err != nil {
		t.Fatalf("GetRoleToken with AllowAll: %v", err)
	}
	if fields, _, _ := tokenFields(t, got.Token); fields["r"] != "role1,role2" {
		t.Errorf("GetRoleToken with AllowAll: r=%q, want role1,role2", fields["r"])
	}
	got, err = c.GetRoleToken("whatever.domain", "", nil, nil, "")
	if err != nil {
		t.Fatalf("GetRoleToken(all roles) with AllowAll: %v", err)
	}
	if fields, _, _ := tokenFields(t, got.Token); fields["r"] != "admin" {
		t.Errorf("GetRoleToken(all roles) with AllowAll: r=%q, want admin", fields["r"])
	}
	_, err = anonClient(t, s).GetRoleToken("whatever.domain", "role1", nil, nil, "")
	wantResourceError(t, "GetRoleToken(unauthenticated) with AllowAll", err, 401, "authentication required")
}
