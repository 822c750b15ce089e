package identity_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestUnreachableAtStart: while ZTS cannot be reached the Manager is not
// ready, retries with backoff and logs every attempt with the reason; it
// becomes ready once ZTS answers.
func TestUnreachableAtStart(t *testing.T) {
	tests := []struct {
		name    string
		down    func(f *fixture)
		up      func(f *fixture)
		wantErr string
	}{
		{
			name:    "connections refused",
			down:    func(f *fixture) { f.zts.RefuseConnections(true) },
			up:      func(f *fixture) { f.zts.RefuseConnections(false) },
			wantErr: "zts unavailable",
		},
		{
			name: "503 answers",
			down: func(f *fixture) {
				f.zts.SetFailure(ztsfake.EndpointInstanceRegister, ztsfake.Failure{Status: http.StatusServiceUnavailable, Message: "zts is starting"})
			},
			up:      func(f *fixture) { f.zts.SetFailure(ztsfake.EndpointInstanceRegister, ztsfake.Failure{}) },
			wantErr: "503: zts is starting",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, ztsfake.Options{}, true)
			tc.down(f)
			o := f.options()
			o.RetryMin, o.RetryMax = 10*time.Millisecond, 40*time.Millisecond
			m := newManager(t, o)
			start := time.Now()
			startRun(t, m)

			const failureLine = "identity certificate attempt failed, retrying"
			waitFor(t, "three failed attempts", func() bool { return f.logs.count(failureLine) >= 3 })
			err := m.Ready()
			if err == nil || !strings.Contains(err.Error(), "no identity certificate yet") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Ready() while ZTS is down = %v, want \"no identity certificate yet\" and %q", err, tc.wantErr)
			}
			for _, line := range f.logs.all() {
				if strings.Contains(line, failureLine) && (!strings.Contains(line, tc.wantErr) || !strings.Contains(line, `"attempt"`)) {
					t.Errorf("log line %s: want the reason %q and the attempt", line, tc.wantErr)
				}
				if strings.Contains(line, "sa-token-1") {
					t.Errorf("log line %s shows the service account token", line)
				}
			}
			tc.up(f)
			waitReady(t, m)
			elapsed := time.Since(start)
			attempts := f.logs.count(failureLine) + 1
			if tc.name == "503 answers" {
				if got := f.zts.Calls(ztsfake.EndpointInstanceRegister); got != attempts {
					t.Errorf("register calls = %d, want %d (one per logged attempt, and the last)", got, attempts)
				}
			}
			// Backoff: at least 5 ms (half of RetryMin) between attempts.
			if max := int(elapsed/(5*time.Millisecond)) + 1; attempts > max {
				t.Errorf("%d attempts in %v, want at most %d with backoff", attempts, elapsed, max)
			}
			f.zts.Grant("prov", "reader", "client.api")
			if err := f.roleTokenThrough(m); err != nil {
				t.Errorf("a call through Transport() once ready: %v", err)
			}
		})
	}
}

func TestInitDeadlineWhenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	f := newFixture(t, ztsfake.Options{}, true)
	o := f.options()
	o.ZTSURL = "https://" + addr + "/zts/v1"
	o.RetryMin, o.RetryMax = 10*time.Millisecond, 20*time.Millisecond
	m := newManager(t, o)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = m.Init(ctx)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Init with ZTS down: %v, want the deadline and the last error (connection refused)", err)
	}
	if n := f.logs.count("identity certificate attempt failed"); n < 2 {
		t.Errorf("%d failed attempts logged, want retries until the deadline", n)
	}
}

// TestRefreshFailureKeepsCertificate: a failing refresh leaves the files
// and the certificate in use until it expires; once ZTS answers again an
// expired certificate is replaced by registering again.
func TestRefreshFailureKeepsCertificate(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	f.zts.Grant("prov", "reader", "client.api")
	m := newManager(t, f.options())
	if err := m.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	certPEM, keyPEM, leaf := f.identityFiles(t)
	startRun(t, m)
	f.zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{Status: http.StatusInternalServerError, Message: "database down"})

	f.advance(t, 45*time.Minute)
	for range 3 {
		f.advance(t, time.Minute) // retries with backoff
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got < 3 {
		t.Errorf("refresh calls = %d, want retries", got)
	}
	st := m.Status()
	if st.LastError == nil || !strings.Contains(st.LastError.Error(), "database down") || st.Failures < 3 {
		t.Errorf("Status() = %+v, want the last error and the failure count", st)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() with a failing refresh and a valid certificate: %v", err)
	}
	newCert, newKey, _ := f.identityFiles(t)
	if !bytes.Equal(newCert, certPEM) || !bytes.Equal(newKey, keyPEM) {
		t.Errorf("identity files changed after failed refreshes")
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport() with the old certificate: %v", err)
	}

	// Past NotAfter: not ready, files still in place. (The attempt at
	// expiry may be a register: fail that too.)
	f.zts.SetFailure(ztsfake.EndpointInstanceRegister, ztsfake.Failure{Status: http.StatusInternalServerError, Message: "database down"})
	f.advance(t, leaf.NotAfter.Sub(f.clock.Now())+time.Second)
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "database down") {
		t.Errorf("Ready() after expiry = %v, want \"expired\" and the last error", err)
	}
	if b := readFile(t, f.dir+"/"+identity.CertFileName); !bytes.Equal(b, certPEM) {
		t.Errorf("certificate file changed after expiry")
	}

	// ZTS is back; refresh needs a valid certificate, so the Manager registers again.
	f.zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{})
	f.zts.SetFailure(ztsfake.EndpointInstanceRegister, ztsfake.Failure{})
	refreshes := f.zts.Calls(ztsfake.EndpointInstanceRefresh)
	f.advance(t, time.Minute)
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready() after ZTS returned: %v", err)
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got != refreshes {
		t.Errorf("refresh calls = %d, want %d: an expired certificate cannot refresh, the Manager registers again", got, refreshes)
	}
	if st := m.Status(); st.LastError != nil || st.Failures != 0 {
		t.Errorf("Status() after recovery = %+v, want no error", st)
	}
}

// TestBuiltinK8SReregister: against ZTS's built-in Kubernetes provider
// (JSON attestation, refresh refused), id-token-json with reregister keeps
// a valid certificate across several short lifetimes, on the wall clock.
func TestBuiltinK8SReregister(t *testing.T) {
	t.Parallel()
	const provider = "sys.auth.k8s"
	f := newFixture(t, ztsfake.Options{
		CertLifetime: 3 * time.Second,
		K8SProvider:  &ztsfake.K8SProvider{Provider: provider, Audience: "zts.test"},
	}, true)
	tok, err := f.zts.ServiceAccountToken(testDomain, "client.api", "zts.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.writeToken(t, tok)
	o := f.options()
	o.Provider = provider
	o.AttestationFormat = identity.AttestationIDTokenJSON
	o.Renewal = identity.RenewalReregister
	o.RefreshFraction = 0.5
	o.TrustDomain = "cluster.local"
	m := newManager(t, o)
	startRun(t, m)
	waitReady(t, m)

	serials := map[string]bool{}
	deadline := time.Now().Add(6500 * time.Millisecond) // more than two lifetimes
	for time.Now().Before(deadline) {
		if err := m.Ready(); err != nil {
			t.Fatalf("Ready() at %s: %v", time.Now().Format(time.StampMilli), err)
		}
		leaf := leafOf(t, m.CertificateChainPEM())
		if !time.Now().Before(leaf.NotAfter) {
			t.Fatalf("certificate %s in use expired at %s", leaf.SerialNumber.Text(16), leaf.NotAfter)
		}
		_, _, fileLeaf := f.identityFiles(t)
		if !time.Now().Before(fileLeaf.NotAfter) {
			t.Fatalf("certificate file expired at %s", fileLeaf.NotAfter)
		}
		serials[leaf.SerialNumber.Text(16)] = true
		time.Sleep(50 * time.Millisecond)
	}
	if len(serials) < 4 {
		t.Errorf("%d certificates in 6.5 s of 3 s lifetimes, want at least 4", len(serials))
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got != 0 {
		t.Errorf("refresh calls = %d, want 0 with reregister", got)
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRegister); got < 4 {
		t.Errorf("register calls = %d, want at least 4", got)
	}
}

// TestBuiltinK8SRefreshFails: refresh renewal against the built-in
// provider fails with an error that says so and what to set.
func TestBuiltinK8SRefreshFails(t *testing.T) {
	f := newFixture(t, ztsfake.Options{K8SProvider: &ztsfake.K8SProvider{}}, false)
	tok, err := f.zts.ServiceAccountToken(testDomain, "client.api", "", 10*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.writeToken(t, tok)
	o := f.options()
	o.AttestationFormat = identity.AttestationIDTokenJSON
	m := newManager(t, o)
	if err := m.Init(t.Context()); err != nil {
		t.Fatalf("Init (register) against the built-in provider: %v", err)
	}
	certPEM, _, _ := f.identityFiles(t)
	startRun(t, m)
	f.advance(t, 45*time.Minute)
	err = m.Status().LastError
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "cannot be refreshed") ||
		!strings.Contains(err.Error(), "ATHENZ_CERT_RENEWAL=reregister") {
		t.Errorf("refresh against the built-in provider: %v, want 403 \"cannot be refreshed\" and the ATHENZ_CERT_RENEWAL=reregister hint", err)
	}
	if b := readFile(t, f.dir+"/"+identity.CertFileName); !bytes.Equal(b, certPEM) {
		t.Errorf("certificate file changed after a refused refresh")
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() with a still valid certificate: %v", err)
	}
}

// TestRenewalRetriesAfterLongOutage: a renewal that keeps failing while
// the certificate is valid retries quickly six times (1 s doubling to
// RetryMax), then waits 0.8 of the time the certificate has left (at most
// an hour): a 50 min outage costs a handful of calls, not one a minute (a
// fleet's renewals would otherwise all come back within a minute of ZTS's
// recovery, issue 15); the certificate is renewed once ZTS answers, before
// it expires.
func TestRenewalRetriesAfterLongOutage(t *testing.T) {
	f := newFixture(t, ztsfake.Options{CertLifetime: 3 * time.Hour}, false)
	m := newManager(t, f.options())
	startRun(t, m)
	waitReady(t, m)
	first := m.Status()
	// Renewal falls due at 2/3 of the 3 h (less up to 10% jitter).
	f.zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{Status: http.StatusServiceUnavailable, Message: "down"})
	f.advance(t, 2*time.Hour)
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got == 0 {
		t.Fatal("no renewal attempt by 2 h into a 3 h certificate")
	}
	f.advance(t, 50*time.Minute)
	attempts := f.zts.Calls(ztsfake.EndpointInstanceRefresh)
	t.Logf("%d renewal attempts in 50 min of failures", attempts)
	if attempts < 7 || attempts > 10 {
		t.Errorf("%d renewal attempts in 50 min of failures, want 7 (the first and six quick retries) to 10", attempts)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() with a valid certificate while renewals fail = %v, want nil", err)
	}
	f.zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{})
	for m.Status().Serial == first.Serial {
		if !f.clock.Now().Before(first.ExpiresAt) {
			t.Fatalf("the certificate was not renewed before it expired at %v, after ZTS came back", first.ExpiresAt)
		}
		f.advance(t, time.Minute)
	}
	t.Logf("renewed %v before the old certificate expired", first.ExpiresAt.Sub(f.clock.Now()))
}
