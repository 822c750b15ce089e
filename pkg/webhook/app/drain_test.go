package app_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"syscall"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// TestShutdownDrain: told to stop, an injector with a drain keeps answering
// admissions on the connections a client holds, each answer asking the
// client to close its connection, and stops when the drain is over. The
// API server keeps idle connections to every replica and does not retry an
// admission: without the drain the server closes them as it stops, and an
// admission sent on one fails (the rolling-update failure that
// TestRollingInjector in test/e2e saw as EOF).
func TestShutdownDrain(t *testing.T) {
	const drain = 3 * time.Second
	// A second injector, the command as a process of its own, on its own
	// ports and namespace; the API server does not call it.
	child := startInjector(t, t.TempDir(), "injector",
		"--namespace="+newNamespace(t, "athenz-drain", nil), "--cert-dir="+controlPlane.CertDir,
		"--shutdown-drain="+drain.String())
	child.waitReady(t)
	webhookAddr := child.webhookAddr

	// One connection, kept alive between admissions, as the API server's.
	// What is under test is the connection's handling, not the
	// certificate, which names the API server's webhook address.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 1} //nolint:gosec // see above
	defer tr.CloseIdleConnections()
	review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"0b9c7c1e-5d0f-4d1b-9d6e-3c2a4f1e8a01",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE",` +
		`"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},"spec":{"containers":[{"name":"app","image":"app"}]}}}}`)
	type answer struct {
		status       int
		reused, last bool // on a kept connection; asked to close it after
	}
	admit := func() (answer, error) {
		var a answer
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodPost,
			"https://"+webhookAddr+webhook.PathPods, bytes.NewReader(review))
		if err != nil {
			return a, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return a, err
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, or the connection is not kept
		resp.Body.Close()
		a.status, a.last = resp.StatusCode, resp.Close
		return a, nil
	}

	if a, err := admit(); err != nil || a.status != http.StatusOK || a.last {
		t.Fatalf("admission before the stop = %+v, %v; want 200 on a connection kept alive", a, err)
	}
	stopped := time.Now()
	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Without a drain the server would be shut down by now.
	time.Sleep(300 * time.Millisecond)
	if a, err := admit(); err != nil || a.status != http.StatusOK || !a.reused || !a.last {
		t.Fatalf("admission on the kept connection, draining = %+v, %v; want 200 on the reused connection, with Connection: close", a, err)
	}
	if a, err := admit(); err != nil || a.status != http.StatusOK || a.reused || !a.last {
		t.Fatalf("admission on a new connection, draining = %+v, %v; want 200 with Connection: close", a, err)
	}
	select {
	case <-child.exited:
		if child.err != nil {
			t.Fatalf("the injector exited with %v after SIGTERM, want 0", child.err)
		}
	case <-time.After(drain + 30*time.Second):
		t.Fatal("the injector did not stop after its drain")
	}
	if took := time.Since(stopped); took < drain-100*time.Millisecond {
		t.Errorf("the injector stopped %v after it was told to, want after the %v drain", took, drain)
	}
	if a, err := admit(); err == nil {
		t.Errorf("admission after the drain = %+v, want no server", a)
	}
}
