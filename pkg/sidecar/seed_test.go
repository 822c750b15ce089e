package sidecar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil" //nolint:staticcheck // the seed's examples use it; they are copied as they are
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/libs/go/zmssvctoken"
)

// The seed README's client examples (athenz-client-sidecar "Developer
// Guide"), copied as they are except for what does not compile out of the
// README: scURL and scPort become variables set to the test sidecar, the
// model types are declared here with the seed's JSON names, the two
// initHTTPClient and MakeRequestUsingProxy pairs get suffixes so they can
// live in one file, and the unused GetNToken parameters stay unused.

var (
	scURL  = ""     // sidecar URL
	scPort = "8081" // replaced by the test sidecar's port
)

// The athenz-client-sidecar model types (the seed aliases them from its
// model package), with the JSON names of the seed's tables.

type NTokenResponse struct {
	Token string `json:"token"`
}

type AccessRequest struct {
	Domain            string `json:"domain"`
	Role              string `json:"role"`
	ProxyForPrincipal string `json:"proxy_for_principal"`
	Expiry            int64  `json:"expiry"`
}

type AccessResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

type RoleRequest struct {
	Domain            string `json:"domain"`
	Role              string `json:"role"`
	ProxyForPrincipal string `json:"proxy_for_principal"`
	MinExpiry         int64  `json:"min_expiry"`
	MaxExpiry         int64  `json:"max_expiry"`
}

type RoleResponse struct {
	Token      string `json:"token"`
	ExpiryTime int64  `json:"expiryTime"`
}

// ---- Get N-token from client sidecar (verbatim) ----

func GetNToken(appID, nCookie, tCookie, keyID, keyData string, keys []string) (*NTokenResponse, error) {
	url := fmt.Sprintf("http://%s:%s/ntoken", scURL, scPort)

	// make request
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()

	// validate response
	if res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s returned status code %d", url, res.StatusCode)
		return nil, err
	}

	// decode request
	var data NTokenResponse
	err = json.NewDecoder(res.Body).Decode(&data)
	if err != nil {
		return nil, err
	}

	return &data, nil
}

// ---- Get access token from client sidecar (verbatim) ----

func GetAccessToken(domain, role, proxyForPrincipal string, expiry int64) (*AccessResponse, error) {
	url := fmt.Sprintf("http://%s:%s/access-token", scURL, scPort)

	r := &AccessRequest{
		Domain:            domain,
		Role:              role,
		ProxyForPrincipal: proxyForPrincipal,
		Expiry:            expiry,
	}
	reqJSON, _ := json.Marshal(r)

	// create POST request
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBuffer(reqJSON))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")

	// make request
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()

	// validate response
	if res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s returned status code %d", url, res.StatusCode)
		return nil, err
	}

	// decode request
	var data AccessResponse
	err = json.NewDecoder(res.Body).Decode(&data)
	if err != nil {
		return nil, err
	}

	return &data, nil
}

// ---- Get role token from client sidecar (verbatim) ----

func GetRoleToken(domain, role, proxyForPrincipal string, minExpiry, maxExpiry int64) (*RoleResponse, error) {
	url := fmt.Sprintf("http://%s:%s/roletoken", scURL, scPort)

	r := &RoleRequest{
		Domain:            domain,
		Role:              role,
		ProxyForPrincipal: proxyForPrincipal,
		MinExpiry:         minExpiry,
		MaxExpiry:         maxExpiry,
	}
	reqJSON, _ := json.Marshal(r)

	// create POST request
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBuffer(reqJSON))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")

	// make request
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()

	// validate response
	if res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s returned status code %d", url, res.StatusCode)
		return nil, err
	}

	// decode request
	var data RoleResponse
	err = json.NewDecoder(res.Body).Decode(&data)
	if err != nil {
		return nil, err
	}

	return &data, nil
}

// ---- Proxy request through client sidecar (append N-token) (verbatim) ----

var (
	httpClientNToken *http.Client // the HTTP client that use the proxy to append N-token header
)

func proxyNTokenURL() string { return fmt.Sprintf("http://%s:%s/proxy/ntoken", scURL, scPort) }

func initHTTPClientNToken() error {
	proxyURL, err := url.Parse(proxyNTokenURL())
	if err != nil {
		return err
	}

	// transport that use the proxy, and append to the client
	transport := &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
	}

	httpClientNToken = &http.Client{
		Transport: transport,
	}

	return nil
}

func MakeRequestUsingProxyNToken(method, targetURL string, body io.Reader) (*[]byte, error) {
	// create POST request
	req, err := http.NewRequest(method, targetURL, body)
	if err != nil {
		return nil, err
	}

	// make request through the proxy
	res, err := httpClientNToken.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()

	// validate response
	if res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s returned status code %d", targetURL, res.StatusCode)
		return nil, err
	}

	// process response
	data, err := ioutil.ReadAll(res.Body) //nolint:govet // the seed's example, copied unchanged
	if err != nil {
		return nil, err
	}

	return &data, nil
}

// ---- Proxy request through client sidecar (append role token) (verbatim) ----

var (
	httpClientRoleToken *http.Client // the HTTP client that use the proxy to append role token header
)

func proxyRoleTokenURL() string { return fmt.Sprintf("http://%s:%s/proxy/roletoken", scURL, scPort) }

func initHTTPClientRoleToken() error {
	proxyURL, err := url.Parse(proxyRoleTokenURL())
	if err != nil {
		return err
	}

	// transport that use the proxy, and append to the client
	transport := &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
	}

	httpClientRoleToken = &http.Client{
		Transport: transport,
	}

	return nil
}

func MakeRequestUsingProxyRoleToken(method, targetURL string, body io.Reader, role, domain, proxyPrincipal string) (*[]byte, error) {
	// create POST request
	req, err := http.NewRequest(method, targetURL, body)
	if err != nil {
		return nil, err
	}

	// append header for the proxy
	req.Header.Set("Athenz-Role", role)
	req.Header.Set("Athenz-Domain", domain)
	req.Header.Set("Athenz-Proxy-Principal", proxyPrincipal)

	// make request through the proxy
	res, err := httpClientRoleToken.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()

	// validate response
	if res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s returned status code %d", targetURL, res.StatusCode)
		return nil, err
	}

	// process response
	data, err := ioutil.ReadAll(res.Body) //nolint:govet // the seed's example, copied unchanged
	if err != nil {
		return nil, err
	}

	return &data, nil
}

// ---- the test ----

// echoServer answers every request with the headers it received as JSON.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(echo{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type echo struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// TestSeedClientExamples runs the seed README's Go client examples against
// the sidecar. It sets package variables (scURL, scPort), so it is not
// parallel.
func TestSeedClientExamples(t *testing.T) {
	zts := newZTS(t)
	zts.AllowProxy(testDomain + "." + testService)
	zts.Grant("prov", "reader", "user.jane")
	f := startSidecar(t, zts, nil, nil)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(f.api, "http://"))
	scURL, scPort = host, port
	upstream := echoServer(t)

	t.Run("GetNToken", func(t *testing.T) {
		res, err := GetNToken("", "", "", "", "", nil)
		if err != nil {
			t.Fatalf("GetNToken: %v", err)
		}
		v, err := zmssvctoken.NewPubKeyTokenValidator(f.pubPEM)
		if err != nil {
			t.Fatal(err)
		}
		nt, err := v.Validate(res.Token)
		if err != nil {
			t.Fatalf("zmssvctoken rejected the sidecar's N-token %q: %v", res.Token, err)
		}
		if nt.Domain != testDomain || nt.Name != testService {
			t.Errorf("N-token for %s.%s, want %s.%s", nt.Domain, nt.Name, testDomain, testService)
		}
	})

	t.Run("GetAccessToken", func(t *testing.T) {
		res, err := GetAccessToken("prov", "reader", "", 600)
		if err != nil {
			t.Fatalf("GetAccessToken: %v", err)
		}
		if res.AccessToken == "" || res.TokenType != "Bearer" {
			t.Errorf("GetAccessToken = %+v, want a Bearer token", res)
		}
		if res.ExpiresIn <= 0 || res.ExpiresIn > 600 {
			t.Errorf("expires_in = %d, want in (0, 600] for expiry 600", res.ExpiresIn)
		}
	})

	t.Run("GetAccessTokenProxyForPrincipal", func(t *testing.T) {
		res, err := GetAccessToken("prov", "reader", "user.jane", 0)
		if err != nil {
			t.Fatalf("GetAccessToken: %v", err)
		}
		if res.AccessToken == "" {
			t.Errorf("GetAccessToken = %+v, want a token", res)
		}
	})

	t.Run("GetRoleToken", func(t *testing.T) {
		before := time.Now()
		res, err := GetRoleToken("prov", "reader,writer", "", 100, 1000)
		if err != nil {
			t.Fatalf("GetRoleToken: %v", err)
		}
		if !strings.HasPrefix(res.Token, "v=Z1;d=prov;r=reader,writer;") {
			t.Errorf("role token %q, want v=Z1;d=prov;r=reader,writer;...", res.Token)
		}
		if exp := time.Unix(res.ExpiryTime, 0); exp.Before(before.Add(990*time.Second)) || exp.After(before.Add(1001*time.Second)) {
			t.Errorf("expiryTime %v, want about now+1000 s (max_expiry)", exp)
		}
	})

	t.Run("ProxyNToken", func(t *testing.T) {
		if err := initHTTPClientNToken(); err != nil {
			t.Fatal(err)
		}
		data, err := MakeRequestUsingProxyNToken(http.MethodPost, upstream.URL+"/roletoken?x=1", strings.NewReader("hello"))
		if err != nil {
			t.Fatalf("MakeRequestUsingProxy: %v", err)
		}
		var got echo
		if err := json.Unmarshal(*data, &got); err != nil {
			t.Fatalf("upstream answer %s: %v", *data, err)
		}
		if got.Method != "POST" || got.Path != "/roletoken?x=1" || got.Body != "hello" {
			t.Errorf("upstream saw %s %s %q, want POST /roletoken?x=1 \"hello\"", got.Method, got.Path, got.Body)
		}
		v, _ := zmssvctoken.NewPubKeyTokenValidator(f.pubPEM)
		if _, err := v.Validate(got.Header.Get("Athenz-Principal-Auth")); err != nil {
			t.Errorf("upstream's Athenz-Principal-Auth %q does not validate: %v", got.Header.Get("Athenz-Principal-Auth"), err)
		}
		if got.Header.Get("Athenz-Role-Auth") != "" {
			t.Errorf("upstream saw Athenz-Role-Auth on the N-token proxy")
		}
	})

	t.Run("ProxyRoleToken", func(t *testing.T) {
		if err := initHTTPClientRoleToken(); err != nil {
			t.Fatal(err)
		}
		data, err := MakeRequestUsingProxyRoleToken(http.MethodGet, upstream.URL+"/data", nil, "reader", "prov", "user.jane")
		if err != nil {
			t.Fatalf("MakeRequestUsingProxy: %v", err)
		}
		var got echo
		if err := json.Unmarshal(*data, &got); err != nil {
			t.Fatalf("upstream answer %s: %v", *data, err)
		}
		rt := got.Header.Get("Athenz-Role-Auth")
		if !strings.HasPrefix(rt, "v=Z1;d=prov;r=reader;p=user.jane;proxy=client.api;") {
			t.Errorf("upstream's Athenz-Role-Auth %q, want a role token of prov:reader for user.jane via client.api", rt)
		}
		for _, h := range []string{"Athenz-Domain", "Athenz-Role", "Athenz-Proxy-Principal", "Athenz-Principal-Auth"} {
			if v, ok := got.Header[h]; ok {
				t.Errorf("upstream saw %s: %q, want it removed", h, v)
			}
		}
	})
}
