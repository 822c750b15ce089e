package e2e_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// checkSidecarAPI calls the sidecar as the app container would, at its
// ATHENZ_SIDECAR_URL.
func checkSidecarAPI(t *testing.T, s *framework.Scenario) {
	t.Helper()
	api := s.SidecarURL
	if api == "" {
		t.Fatal("no sidecar URL: the app container has no ATHENZ_SIDECAR_URL")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	wantPrincipal := framework.Domain + "." + framework.Service

	// The identity certificate: CN sports.web, issued by ZTS's CA.
	body := call(t, hc, http.MethodGet, api+"/svccert", "", http.StatusOK)
	block, _ := pem.Decode(body)
	if block == nil {
		t.Fatalf("GET /svccert: no PEM in %q", body)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("GET /svccert: %v", err)
	}
	if leaf.Subject.CommonName != wantPrincipal {
		t.Errorf("GET /svccert: CN %q, want %q", leaf.Subject.CommonName, wantPrincipal)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.ZTS.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("GET /svccert: the certificate does not chain to the fake ZTS's CA: %v", err)
	}
	uid := string(s.Sidecar.Pod.UID)
	wantDNS := []string{framework.Service + "." + framework.Domain + "." + framework.DNSSuffix, uid + ".instanceid.athenz." + framework.DNSSuffix}
	if !slices.Equal(leaf.DNSNames, wantDNS) {
		t.Errorf("GET /svccert: SAN DNS %v, want %v", leaf.DNSNames, wantDNS)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://"+framework.Domain+"/sa/"+framework.Service {
		t.Errorf("GET /svccert: SAN URIs %v, want [spiffe://%s/sa/%s]", leaf.URIs, framework.Domain, framework.Service)
	}
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("GET /svccert: SAN IPs %v, want the Pod IP [127.0.0.1]", leaf.IPAddresses)
	}

	// Role tokens, in the query form and as the seed's POST.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/roletoken?domain=" + framework.Domain + "&role=" + framework.Role, ""},
		{http.MethodPost, "/roletoken", `{"domain":"` + framework.Domain + `","role":"` + framework.Role + `"}`},
	} {
		var rt struct {
			Token      string `json:"token"`
			ExpiryTime int64  `json:"expiryTime"`
		}
		decode(t, c.method+" "+c.path, call(t, hc, c.method, api+c.path, c.body, http.StatusOK), &rt)
		f := tokenFields(rt.Token)
		if f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != wantPrincipal {
			t.Errorf("%s %s: role token d=%q r=%q p=%q, want d=%s r=%s p=%s", c.method, c.path, f["d"], f["r"], f["p"], framework.Domain, framework.Role, wantPrincipal)
		}
		if left := time.Until(time.Unix(rt.ExpiryTime, 0)); left < time.Minute {
			t.Errorf("%s %s: expiryTime %d is %v from now", c.method, c.path, rt.ExpiryTime, left)
		}
	}

	// Access tokens: signed by ZTS, for sports.web, bound to the sidecar's
	// certificate (cnf x5t#S256), so issued over the Pod's own mTLS.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/accesstoken?domain=" + framework.Domain + "&role=" + framework.Role, ""},
		{http.MethodPost, "/accesstoken", `{"domain":"` + framework.Domain + `","role":"` + framework.Role + `","expiry":600}`},
	} {
		var at struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		what := c.method + " " + c.path
		decode(t, what, call(t, hc, c.method, api+c.path, c.body, http.StatusOK), &at)
		if at.TokenType != "Bearer" || at.ExpiresIn <= 0 {
			t.Errorf("%s: token_type %q expires_in %d, want Bearer and > 0", what, at.TokenType, at.ExpiresIn)
		}
		claims := verifyJWT(t, what, at.AccessToken, s.ZTS.SigningPublicKeyPEM())
		sum := sha256.Sum256(leaf.Raw)
		if claims.Sub != wantPrincipal || claims.Aud != framework.Domain || !slices.Equal(claims.Scp, []string{framework.Role}) ||
			claims.Cnf["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("%s: claims sub %q aud %q scp %v cnf %v, want sub %s aud %s scp [%s] bound to the /svccert certificate",
				what, claims.Sub, claims.Aud, claims.Scp, claims.Cnf, wantPrincipal, framework.Domain, framework.Role)
		}
	}

	// The N-token ZTS issued with the certificate.
	var nt struct {
		Token string `json:"token"`
	}
	decode(t, "GET /ntoken", call(t, hc, http.MethodGet, api+"/ntoken", "", http.StatusOK), &nt)
	if f := tokenFields(nt.Token); f["d"] != framework.Domain || f["n"] != framework.Service {
		t.Errorf("GET /ntoken: d=%q n=%q, want d=%s n=%s", f["d"], f["n"], framework.Domain, framework.Service)
	}

	// A role the Pod does not have: ZTS's 403 comes through with its message.
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	decode(t, "GET /roletoken of a role not granted", call(t, hc, http.MethodGet, api+"/roletoken?domain="+framework.Domain+"&role=writer", "", http.StatusForbidden), &e)
	if e.Code != http.StatusForbidden || e.Message == "" {
		t.Errorf("GET /roletoken of a role not granted: %+v, want code 403 and ZTS's message", e)
	}

	// The forward proxy: the upstream gets Athenz-Role-Auth, not the
	// control headers.
	echo := framework.StartEcho()
	defer echo.Close()
	proxyURL, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	pc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, echo.URL+"/hello", nil)
	req.Header.Set("Athenz-Domain", framework.Domain)
	req.Header.Set("Athenz-Role", framework.Role)
	resp, err := pc.Do(req)
	if err != nil {
		t.Fatalf("GET %s/hello through the sidecar's proxy: %v", echo.URL, err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/hello through the proxy: %s %s", echo.URL, resp.Status, got)
	}
	h := echo.LastHeaders()
	if h == nil {
		t.Fatalf("the proxy answered %s but the upstream got no request: %s", resp.Status, got)
	}
	if f := tokenFields(h.Get("Athenz-Role-Auth")); f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != wantPrincipal {
		t.Errorf("upstream got Athenz-Role-Auth %q, want a role token d=%s r=%s p=%s", h.Get("Athenz-Role-Auth"), framework.Domain, framework.Role, wantPrincipal)
	}
	for _, name := range []string{"Athenz-Domain", "Athenz-Role", "Athenz-Proxy-Principal"} {
		if v := h.Values(name); len(v) > 0 {
			t.Errorf("upstream got control header %s: %v, want it removed by the proxy", name, v)
		}
	}
}

// call sends a request and checks the status; it returns the body.
func call(t *testing.T, hc *http.Client, method, u, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, u, resp.Status, bytes.TrimSpace(b), want)
	}
	return b
}

func decode(t *testing.T, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, body)
	}
}

// tokenFields splits an Athenz token "v=Z1;d=sports;r=reader;..." into
// its fields.
func tokenFields(tok string) map[string]string {
	f := map[string]string{}
	for part := range strings.SplitSeq(tok, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			f[k] = v
		}
	}
	return f
}

type accessClaims struct {
	Sub string            `json:"sub"`
	Aud string            `json:"aud"`
	Scp []string          `json:"scp"`
	Cnf map[string]string `json:"cnf"`
}

// verifyJWT checks an RS256 JWT's signature against the PEM public key
// and returns its claims.
func verifyJWT(t *testing.T, what, jwt string, pubPEM []byte) accessClaims {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("%s: access token is not a JWT: %q", what, jwt)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	decodeSegment(t, what, parts[0], &hdr)
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		t.Fatalf("the fake ZTS's signing key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok || hdr.Alg != "RS256" {
		t.Fatalf("%s: alg %q with a %T key, want RS256 with RSA (the fake's default)", what, hdr.Alg, pub)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("%s: signature: %v", what, err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("%s: the access token's signature does not verify with ZTS's key: %v", what, err)
	}
	var c accessClaims
	decodeSegment(t, what, parts[1], &c)
	return c
}

func decodeSegment(t *testing.T, what, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("%s: JWT segment: %v", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: JWT segment %s: %v", what, b, err)
	}
}
