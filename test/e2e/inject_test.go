package e2e_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestAnnotatedDeployment is DESIGN.md's user's day on a real node: a
// Deployment that does not opt in runs a plain Pod; `kubectl annotate
// deployment web athenz.io/inject=true` rolls out an injected Pod that
// becomes Running and Ready; its app container, running as a non-root UID
// other than the sidecar's, with a read-only root file system, all
// capabilities dropped and no fsGroup, gets tokens from the sidecar on
// localhost:8081, uses its proxy, and reads the certificate and key from
// /var/run/athenz for an mTLS handshake with a server that checks the
// Pod's identity.
func TestAnnotatedDeployment(t *testing.T) {
	s := cluster
	ctx := t.Context()
	_, first, err := s.DeployApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitPod(ctx, first.Namespace, first.Name, time.Minute, "Ready", framework.PodReady); err != nil {
		t.Fatal(err)
	}
	checkNotInjected(t, first)

	dep, err := s.Annotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkWorkloadMutated(t, dep)
	rs, pod, err := s.WaitInjectedPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replicaset %s, pod %s", rs.Name, pod.Name)
	checkInjected(t, s, pod)
	if t.Failed() {
		t.FailNow()
	}
	began := time.Now()
	pod, err = s.WaitPod(ctx, pod.Namespace, pod.Name, 2*time.Minute, "Ready", framework.PodReady)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod %s Ready %v after it was first seen, IP %s", pod.Name, time.Since(began).Round(time.Millisecond), pod.Status.PodIP)
	if err := s.WaitDeploymentReady(ctx, framework.AppNamespace, framework.AppName, time.Minute); err != nil {
		t.Fatal(err)
	}

	app := inApp(pod)
	t.Run("identity files readable by the app", func(t *testing.T) { checkIdentityFiles(t, app, pod) })
	t.Run("sidecar API from the app", func(t *testing.T) { checkSidecarAPI(t, app, pod) })
	t.Run("proxy from the app", func(t *testing.T) { checkProxy(t, app) })
	t.Run("mTLS with the Pod's identity", func(t *testing.T) { checkMTLS(t, app) })
}

// checkIdentityFiles: the app reads the certificate, key and CA as its
// own user; the certificate is the Pod's.
func checkIdentityFiles(t *testing.T, app appCurl, pod *corev1.Pod) {
	for _, f := range []string{"service.cert.pem", "service.key.pem", "ca.cert.pem"} {
		if _, err := app.cat(t, identityDir+"/"+f); err != nil {
			t.Errorf("the app (UID %d, no fsGroup) cannot read %s/%s: %v", framework.AppUID, identityDir, f, err)
		}
	}
	certPEM, err := app.cat(t, identityDir+"/service.cert.pem")
	if err != nil {
		return
	}
	leaf := parseCert(t, "service.cert.pem", certPEM)
	checkPodCert(t, "service.cert.pem", leaf, pod)
}

// checkPodCert: the certificate is sports.web's, from ZTS's CA, for this
// Pod (instance id, IP).
func checkPodCert(t *testing.T, what string, leaf *certificate, pod *corev1.Pod) {
	t.Helper()
	wantPrincipal := framework.Domain + "." + framework.Service
	if leaf.Subject.CommonName != wantPrincipal {
		t.Errorf("%s: CN %q, want %q", what, leaf.Subject.CommonName, wantPrincipal)
	}
	if _, err := leaf.Verify(verifyOptions(cluster.ZTS.CAPool())); err != nil {
		t.Errorf("%s: the certificate does not chain to the fake ZTS's CA: %v", what, err)
	}
	wantDNS := []string{framework.Service + "." + framework.Domain + "." + framework.DNSSuffix, string(pod.UID) + ".instanceid.athenz." + framework.DNSSuffix}
	if !slices.Equal(leaf.DNSNames, wantDNS) {
		t.Errorf("%s: SAN DNS %v, want %v", what, leaf.DNSNames, wantDNS)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://"+framework.Domain+"/sa/"+framework.Service {
		t.Errorf("%s: SAN URIs %v, want [spiffe://%s/sa/%s]", what, leaf.URIs, framework.Domain, framework.Service)
	}
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != pod.Status.PodIP {
		t.Errorf("%s: SAN IPs %v, want the Pod IP [%s]", what, leaf.IPAddresses, pod.Status.PodIP)
	}
}

// checkSidecarAPI calls the sidecar as the app does, at its
// ATHENZ_SIDECAR_URL (http://127.0.0.1:8081).
func checkSidecarAPI(t *testing.T, app appCurl, pod *corev1.Pod) {
	api := "http://127.0.0.1:8081"
	wantPrincipal := framework.Domain + "." + framework.Service

	leaf := parseCert(t, "GET /svccert", app.want(t, 200, api+"/svccert"))
	checkPodCert(t, "GET /svccert", leaf, pod)

	// Role tokens, in the query form and as the seed's POST.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"GET /roletoken", []string{api + "/roletoken?domain=" + framework.Domain + "&role=" + framework.Role}},
		{"POST /roletoken", []string{"-H", "Content-Type: application/json", "-d", `{"domain":"` + framework.Domain + `","role":"` + framework.Role + `"}`, api + "/roletoken"}},
	} {
		var rt struct {
			Token      string `json:"token"`
			ExpiryTime int64  `json:"expiryTime"`
		}
		decode(t, c.name, app.want(t, 200, c.args...), &rt)
		f := tokenFields(rt.Token)
		if f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != wantPrincipal {
			t.Errorf("%s: role token d=%q r=%q p=%q, want d=%s r=%s p=%s", c.name, f["d"], f["r"], f["p"], framework.Domain, framework.Role, wantPrincipal)
		}
		if left := time.Until(time.Unix(rt.ExpiryTime, 0)); left < time.Minute {
			t.Errorf("%s: expiryTime %d is %v from now", c.name, rt.ExpiryTime, left)
		}
	}

	// Access tokens, signed by ZTS, bound to the Pod's certificate.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"GET /accesstoken", []string{api + "/accesstoken?domain=" + framework.Domain + "&role=" + framework.Role}},
		{"POST /accesstoken", []string{"-H", "Content-Type: application/json", "-d", `{"domain":"` + framework.Domain + `","role":"` + framework.Role + `","expiry":600}`, api + "/accesstoken"}},
	} {
		var at struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		decode(t, c.name, app.want(t, 200, c.args...), &at)
		if at.TokenType != "Bearer" || at.ExpiresIn <= 0 {
			t.Errorf("%s: token_type %q expires_in %d, want Bearer and > 0", c.name, at.TokenType, at.ExpiresIn)
		}
		claims := verifyJWT(t, c.name, at.AccessToken, cluster.ZTS.SigningPublicKeyPEM())
		sum := sha256.Sum256(leaf.Raw)
		if claims.Sub != wantPrincipal || claims.Aud != framework.Domain || !slices.Equal(claims.Scp, []string{framework.Role}) ||
			claims.Cnf["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("%s: claims sub %q aud %q scp %v cnf %v, want sub %s aud %s scp [%s] bound to the /svccert certificate",
				c.name, claims.Sub, claims.Aud, claims.Scp, claims.Cnf, wantPrincipal, framework.Domain, framework.Role)
		}
	}

	// The N-token ZTS issued with the certificate.
	var nt struct {
		Token string `json:"token"`
	}
	decode(t, "GET /ntoken", app.want(t, 200, api+"/ntoken"), &nt)
	if f := tokenFields(nt.Token); f["d"] != framework.Domain || f["n"] != framework.Service {
		t.Errorf("GET /ntoken: d=%q n=%q, want d=%s n=%s", f["d"], f["n"], framework.Domain, framework.Service)
	}

	// A role the Pod does not have: ZTS's 403 comes through.
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	decode(t, "GET /roletoken of a role not granted", app.want(t, 403, api+"/roletoken?domain="+framework.Domain+"&role=writer"), &e)
	if e.Code != 403 || e.Message == "" {
		t.Errorf("GET /roletoken of a role not granted: %+v, want code 403 and ZTS's message", e)
	}
}

// checkProxy: the app sends a request through the sidecar's proxy; the
// upstream (on the host) gets Athenz-Role-Auth and not the control
// headers.
func checkProxy(t *testing.T, app appCurl) {
	echo := framework.StartEchoOn(framework.HostIP)
	defer echo.Close()
	app.want(t, 200, "-x", "http://127.0.0.1:8081", "-H", "Athenz-Domain: "+framework.Domain, "-H", "Athenz-Role: "+framework.Role, echo.URL+"/hello")
	h := echo.LastHeaders()
	if h == nil {
		t.Fatal("the proxy answered 200 but the upstream got no request")
	}
	wantPrincipal := framework.Domain + "." + framework.Service
	if f := tokenFields(h.Get("Athenz-Role-Auth")); f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != wantPrincipal {
		t.Errorf("upstream got Athenz-Role-Auth %q, want a role token d=%s r=%s p=%s", h.Get("Athenz-Role-Auth"), framework.Domain, framework.Role, wantPrincipal)
	}
	for _, name := range []string{"Athenz-Domain", "Athenz-Role", "Athenz-Proxy-Principal"} {
		if v := h.Values(name); len(v) > 0 {
			t.Errorf("upstream got control header %s: %v, want it removed by the proxy", name, v)
		}
	}
}

// checkMTLS: with the files from /var/run/athenz, the app completes an
// mTLS handshake with a server that requires a client certificate from
// ZTS's CA; the server sees the Pod's SPIFFE URI and DNS names.
func checkMTLS(t *testing.T, app appCurl) {
	srv, err := framework.StartIdentityServer(framework.HostIP, cluster.CA, cluster.ZTS.CAPool())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	body := app.want(t, 200,
		"--cacert", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", // the server's CA: the cluster's
		"--cert", identityDir+"/service.cert.pem", "--key", identityDir+"/service.key.pem",
		"https://"+u.Host+"/")
	var id framework.ClientIdentity
	decode(t, "the identity server's answer", body, &id)
	wantURI := "spiffe://" + framework.Domain + "/sa/" + framework.Service
	wantDNS := framework.Service + "." + framework.Domain + "." + framework.DNSSuffix
	if !slices.Contains(id.URIs, wantURI) || !slices.Contains(id.DNSNames, wantDNS) {
		t.Errorf("the server saw a client certificate with URIs %v and DNS names %v, want %s and %s", id.URIs, id.DNSNames, wantURI, wantDNS)
	}
}
