package ztsfake_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/ardielle/ardielle-go/rdl"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestFailNext(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")

	s.FailNext(ztsfake.EndpointRoleToken, http.StatusServiceUnavailable, 2)
	s.FailNext(ztsfake.EndpointRoleToken, http.StatusTooManyRequests, 1)
	for i, want := range []int{503, 503, 429, 0} {
		_, err := c.GetRoleToken("prov", "reader", nil, nil, "")
		if want == 0 {
			if err != nil {
				t.Fatalf("GetRoleToken call %d: %v, want success after the injected failures", i, err)
			}
			continue
		}
		wantResourceError(t, fmt.Sprintf("GetRoleToken call %d", i), err, want, "ztsfake: injected failure")
	}
	if _, err := c.GetStatus(); err != nil {
		t.Errorf("GetStatus while roletoken fails: %v", err)
	}
	if got := s.Calls(ztsfake.EndpointRoleToken); got != 4 {
		t.Errorf("Calls(roletoken) = %d, want 4 (failed calls count)", got)
	}

	s.FailNext(ztsfake.EndpointRoleToken, 500, 5)
	s.FailNext(ztsfake.EndpointRoleToken, 0, 0) // drops them
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Errorf("GetRoleToken after FailNext(n=0): %v", err)
	}
}

func TestSetFailure(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")
	form := accessTokenForm("prov:role.reader", 0, "")

	s.SetFailure(ztsfake.EndpointAccessToken, ztsfake.Failure{Status: 502, Message: "upstream down"})
	for i := range 3 {
		_, err := c.PostAccessTokenRequest(form)
		wantResourceError(t, fmt.Sprintf("PostAccessTokenRequest call %d", i), err, 502, "upstream down")
	}
	s.SetFailure(ztsfake.EndpointAccessToken, ztsfake.Failure{})
	if _, err := c.PostAccessTokenRequest(form); err != nil {
		t.Fatalf("PostAccessTokenRequest after clearing: %v", err)
	}

	s.SetFailure(ztsfake.EndpointAccessToken, ztsfake.Failure{Hang: true})
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := c.PostAccessTokenRequest(form)
	if err == nil {
		t.Fatalf("PostAccessTokenRequest with Hang: no error, want a client timeout")
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("PostAccessTokenRequest with Hang returned after %v, want the 200ms client timeout", d)
	}
	s.SetFailure(ztsfake.EndpointAccessToken, ztsfake.Failure{})
	if _, err := c.PostAccessTokenRequest(form); err != nil {
		t.Errorf("PostAccessTokenRequest after clearing Hang: %v", err)
	}
}

func TestSetLatency(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")
	const d = 150 * time.Millisecond
	s.SetLatency(ztsfake.EndpointRoleToken, d)

	start := time.Now()
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Fatalf("GetRoleToken with latency: %v", err)
	}
	if got := time.Since(start); got < d {
		t.Errorf("GetRoleToken with latency %v took %v", d, got)
	}
	start = time.Now()
	if _, err := c.GetStatus(); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got >= d {
		t.Errorf("GetStatus took %v, want no latency (only roletoken is delayed)", got)
	}
	s.SetLatency(ztsfake.EndpointRoleToken, 0)
	start = time.Now()
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got >= d {
		t.Errorf("GetRoleToken after SetLatency(0) took %v", got)
	}
}

// TestCloseReleasesHangingRequests checks that Close does not wait for a
// hanging request's client to give up.
func TestCloseReleasesHangingRequests(t *testing.T) {
	s, err := ztsfake.Start(ztsfake.Options{AllowAll: true})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Hang: true})
	s.SetLatency(ztsfake.EndpointStatus, time.Hour)
	c := newClient(t, s, "client", "api")
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.GetRoleToken("prov", "reader", nil, nil, "") })
	wg.Go(func() { _, _ = c.GetStatus() })
	for s.Calls(ztsfake.EndpointRoleToken) == 0 || s.Calls(ztsfake.EndpointStatus) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return while a request hangs")
	}
	wg.Wait()
	s.Close() // twice is fine
}

// TestConcurrentCalls hammers the fake with 200 goroutines while knobs and
// grants change.
func TestConcurrentCalls(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	s.Grant("prov", "writer", "client.api")
	c := newClient(t, s, "client", "api")
	const n = 200

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		roles := zts.EntityList("reader,writer")
		if i%2 == 1 {
			roles = "writer,reader"
		}
		wg.Go(func() {
			if _, err := c.GetRoleToken("prov", roles, nil, nil, ""); err != nil {
				errs <- fmt.Errorf("GetRoleToken(%s): %w", roles, err)
			}
		})
		wg.Go(func() {
			if _, err := c.PostAccessTokenRequest(accessTokenForm("prov:role.writer prov:role.reader", 0, "")); err != nil {
				errs <- fmt.Errorf("PostAccessTokenRequest: %w", err)
			}
		})
		if i%20 == 0 {
			wg.Go(func() {
				s.Grant("other", fmt.Sprintf("role%d", i), "client.api")
				s.SetLatency(ztsfake.EndpointStatus, time.Millisecond)
				_ = s.Calls(ztsfake.EndpointRoleToken)
				_ = s.LastCSR(ztsfake.EndpointRoleCert)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Calls(ztsfake.EndpointRoleToken); got != n {
		t.Errorf("Calls(roletoken) = %d, want %d", got, n)
	}
	if got := s.CallsFor(ztsfake.EndpointRoleToken, "prov:reader,writer"); got != n {
		t.Errorf("CallsFor(roletoken, prov:reader,writer) = %d, want %d (role order does not matter)", got, n)
	}
	if got := s.CallsFor(ztsfake.EndpointAccessToken, "prov:role.reader prov:role.writer"); got != n {
		t.Errorf("CallsFor(accesstoken, prov:role.reader prov:role.writer) = %d, want %d", got, n)
	}
}

func TestRefuseConnections(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Fatalf("GetRoleToken before refusing: %v", err)
	}

	s.RefuseConnections(true)
	for i := range 3 {
		_, err := c.GetRoleToken("prov", "reader", nil, nil, "")
		if err == nil {
			t.Fatalf("GetRoleToken %d while refusing connections succeeded", i)
		}
		var re rdl.ResourceError
		if errors.As(err, &re) {
			t.Fatalf("GetRoleToken %d while refusing = HTTP %d %s, want a connection error", i, re.Code, re.Message)
		}
	}
	accepted, refused := s.Connections()
	if refused < 3 || accepted <= refused {
		t.Errorf("Connections() = %d accepted, %d refused; want at least 3 refused after one served", accepted, refused)
	}
	calls := s.Calls(ztsfake.EndpointRoleToken)

	s.RefuseConnections(false)
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Fatalf("GetRoleToken after refusing stopped: %v", err)
	}
	if got := s.Calls(ztsfake.EndpointRoleToken); got != calls+1 {
		t.Errorf("Calls(roletoken) = %d, want %d: refused connections never reach a handler", got, calls+1)
	}
}
