package e2e_test

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestTokenFileReader (acceptance, issue 16): an app container that only
// reads a file, with no HTTP client (`cat`, as a shell script, nginx or
// a JVM reading a file would), gets a valid role token from
// /var/run/athenz/tokens/<domain>/<role>.roletoken: a Job with
// athenz.io/token-files, with the native sidecar (the file exists before
// the app starts, since the sidecar is ready only then) and with the init
// container of athenz.io/native-sidecar: "false" (which writes it once).
func TestTokenFileReader(t *testing.T) {
	t.Parallel()
	ns := "tokenfiles"
	newNamespace(t, ns, nil)
	file := "/var/run/athenz/tokens/" + framework.Domain + "/" + framework.Role + ".roletoken"
	for _, c := range []struct {
		name        string
		annotations map[string]string
	}{
		{"native", nil},
		{"init-container", map[string]string{"athenz.io/native-sidecar": "false"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			annotations := map[string]string{"athenz.io/token-files": "roletoken:" + framework.Domain + ":role." + framework.Role}
			maps.Copy(annotations, c.annotations)
			out := runJob(t, appJob(ns, "reader-"+c.name, []string{"cat", file, file + ".json"}, annotations))
			tok, meta, ok := strings.Cut(out, "{")
			if !ok {
				t.Fatalf("the app printed %q, want the token and its JSON", out)
			}
			f := tokenFields(tok)
			wantPrincipal := ns + "." + framework.Service
			if f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != wantPrincipal {
				t.Errorf("the token file holds %q, want a role token d=%s r=%s p=%s", tok, framework.Domain, framework.Role, wantPrincipal)
			}
			e, err := strconv.ParseInt(f["e"], 10, 64)
			if err != nil {
				t.Fatalf("role token expiry e=%q: %v", f["e"], err)
			}
			left := time.Until(time.Unix(e, 0))
			if left <= 0 {
				t.Errorf("the role token in the file expired %v ago", -left)
			}
			verifyRoleToken(t, "the token file's role token", tok, cluster.ZTS.SigningPublicKeyPEM())
			if !strings.Contains(meta, `"type":"roletoken"`) || !strings.Contains(meta, `"expiry_time":`) {
				t.Errorf("the JSON companion is %q, want type and expiry_time", "{"+meta)
			}
			t.Logf("%s: the app read a role token for %s valid for %v more, signed by ZTS", c.name, f["p"], left.Round(time.Second))
		})
	}
}

// TestProxyMTLSUpstream (acceptance, issue 16): an app container calls an
// upstream that requires a client certificate from ZTS's CA (an
// Athenz-protected service, on the node, serving with a certificate of
// ZTS's CA) as plain HTTP through the sidecar's proxy with
// Athenz-Upstream-TLS: true. The sidecar calls it over TLS (HTTP/2)
// presenting the Pod's certificate and adds Athenz-Role-Auth; the upstream
// sees the Pod's SPIFFE URI and the certificate /svccert serves. The app
// goes on calling it through the 2-minute certificate's rotation: every
// call succeeds, and the first one after /svccert shows the new
// certificate presents it.
func TestProxyMTLSUpstream(t *testing.T) {
	t.Parallel()
	ns := "origination" // no "-": the domain is the namespace
	newNamespace(t, ns, nil)
	pod := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	serving, err := cluster.ZTS.IssueServer(framework.HostIP.String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := framework.StartIdentityServerWithCert(framework.HostIP, serving, cluster.ZTS.CAPool())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	app := inApp(pod)
	body := app.want(t, 200, "-x", "http://127.0.0.1:8081",
		"-H", "Athenz-Upstream-TLS: true", "-H", "Athenz-Domain: "+framework.Domain, "-H", "Athenz-Role: "+framework.Role,
		"http://"+u.Host+"/orders")
	var id framework.ClientIdentity
	decode(t, "the upstream's answer", body, &id)
	wantURI := "spiffe://" + ns + "/sa/" + framework.Service
	if !slices.Contains(id.URIs, wantURI) {
		t.Errorf("the upstream saw a client certificate with URIs %v, want the Pod's %s", id.URIs, wantURI)
	}
	if f := tokenFields(id.RoleAuth); f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != ns+"."+framework.Service {
		t.Errorf("the upstream got Athenz-Role-Auth %q, want a role token d=%s r=%s p=%s.%s", id.RoleAuth, framework.Domain, framework.Role, ns, framework.Service)
	}
	if id.Proto != "HTTP/2.0" {
		t.Errorf("the upstream saw %s, want HTTP/2.0 (it offers h2)", id.Proto)
	}
	first := parseCert(t, "GET /svccert", app.want(t, 200, "http://127.0.0.1:8081/svccert"))
	if id.CommonName != first.Subject.CommonName {
		t.Errorf("the upstream saw client %q, want the Pod's certificate %q", id.CommonName, first.Subject.CommonName)
	}
	t.Logf("the upstream saw %s over %s with URIs %v and a role token for %s", id.CommonName, id.Proto, id.URIs, tokenFields(id.RoleAuth)["p"])

	// Through the rotation: a call a second until /svccert serves the next
	// certificate; each must succeed (app.want fails the test otherwise).
	call := func() framework.ClientIdentity {
		var got framework.ClientIdentity
		decode(t, "the upstream's answer", app.want(t, 200, "-x", "http://127.0.0.1:8081", "-H", "Athenz-Upstream-TLS: true",
			"-H", "Athenz-Domain: "+framework.Domain, "-H", "Athenz-Role: "+framework.Role, "http://"+u.Host+"/orders"), &got)
		return got
	}
	calls, serials := 0, map[string]int{}
	deadline := time.Now().Add(certLifetime + time.Minute)
	for {
		serials[call().Serial]++
		calls++
		cur := parseCert(t, "GET /svccert", app.want(t, 200, "http://127.0.0.1:8081/svccert"))
		if cur.SerialNumber.Cmp(first.SerialNumber) != 0 {
			got := call()
			serials[got.Serial]++
			calls++
			if got.Serial != cur.SerialNumber.Text(16) {
				t.Errorf("the first call after the rotation presented certificate %s (the old one: %v), want the new one %s",
					got.Serial, got.Serial == first.SerialNumber.Text(16), cur.SerialNumber.Text(16))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new certificate within %v", certLifetime+time.Minute)
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d calls through the proxy during the rotation, all answered 200; certificates presented: %v", calls, serials)
}
