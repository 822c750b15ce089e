package ztsfake

import (
	"context"
	"crypto/x509"
	"net/http"
	"sync"
	"time"
)

// Endpoint names one ZTS operation for the knobs and counters.
type Endpoint string

// The endpoints the fake serves. See the package documentation for paths.
const (
	EndpointRoleToken        Endpoint = "roletoken"
	EndpointAccessToken      Endpoint = "accesstoken"
	EndpointInstanceRegister Endpoint = "instance-register"
	EndpointInstanceRefresh  Endpoint = "instance-refresh"
	EndpointInstanceDelete   Endpoint = "instance-delete"
	EndpointKeyRefresh       Endpoint = "key-refresh"
	EndpointRoleCert         Endpoint = "rolecert"
	EndpointJWKS             Endpoint = "jwks"
	EndpointPublicKey        Endpoint = "publickey"
	EndpointStatus           Endpoint = "status"
)

// defaultFailureMessage is the message of injected failures without one.
const defaultFailureMessage = "ztsfake: injected failure"

// Failure makes every call of an endpoint fail until it is cleared. The zero
// Failure clears.
type Failure struct {
	// Status is the HTTP status to answer with a {"code","message"} body,
	// e.g. 503. Ignored when Hang is set.
	Status int
	// Hang blocks the request until its context is done (the client gave
	// up) or the server closes; no answer is written.
	Hang bool
	// Message is the error message. Default "ztsfake: injected failure".
	Message string
}

type pendingFailure struct {
	status    int
	remaining int
}

// knobs holds the per-endpoint latency, injected failures, call counters
// and the last CSR seen. mu guards every map.
type knobs struct {
	mu       sync.Mutex
	latency  map[Endpoint]time.Duration
	failNext map[Endpoint][]pendingFailure
	failure  map[Endpoint]Failure
	calls    map[Endpoint]int
	callsFor map[Endpoint]map[string]int
	lastCSR  map[Endpoint]*x509.CertificateRequest
}

func newKnobs() *knobs {
	return &knobs{
		latency:  map[Endpoint]time.Duration{},
		failNext: map[Endpoint][]pendingFailure{},
		failure:  map[Endpoint]Failure{},
		calls:    map[Endpoint]int{},
		callsFor: map[Endpoint]map[string]int{},
		lastCSR:  map[Endpoint]*x509.CertificateRequest{},
	}
}

// SetLatency delays every answer of ep by d before it is handled (and
// before an injected failure). d <= 0 removes the delay. A client that gives
// up, or Close, ends the wait early.
func (s *Server) SetLatency(ep Endpoint, d time.Duration) {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	if d <= 0 {
		delete(s.knobs.latency, ep)
		return
	}
	s.knobs.latency[ep] = d
}

// FailNext makes the next n calls of ep answer status with a
// {"code","message"} body ("ztsfake: injected failure"). Calls queue up in
// order; they take precedence over SetFailure. n <= 0 drops every pending
// FailNext of ep.
func (s *Server) FailNext(ep Endpoint, status int, n int) {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	if n <= 0 {
		delete(s.knobs.failNext, ep)
		return
	}
	s.knobs.failNext[ep] = append(s.knobs.failNext[ep], pendingFailure{status: status, remaining: n})
}

// SetFailure makes every call of ep fail as f says until it is called again
// with the zero Failure.
func (s *Server) SetFailure(ep Endpoint, f Failure) {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	if f == (Failure{}) {
		delete(s.knobs.failure, ep)
		return
	}
	s.knobs.failure[ep] = f
}

// Calls returns how many requests were routed to ep, including the ones a
// knob failed or delayed.
func (s *Server) Calls(ep Endpoint) int {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	return s.knobs.calls[ep]
}

// CallsFor returns how many requests were routed to ep with the given key.
// The key formats are listed in the package documentation.
func (s *Server) CallsFor(ep Endpoint, key string) int {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	return s.knobs.callsFor[ep][key]
}

// LastCSR returns the last certificate signing request that ep
// (EndpointInstanceRegister, EndpointInstanceRefresh, EndpointKeyRefresh or
// EndpointRoleCert) parsed, valid or not, or nil if none.
func (s *Server) LastCSR(ep Endpoint) *x509.CertificateRequest {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	return s.knobs.lastCSR[ep]
}

func (k *knobs) record(ep Endpoint, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls[ep]++
	m := k.callsFor[ep]
	if m == nil {
		m = map[string]int{}
		k.callsFor[ep] = m
	}
	m[key]++
}

func (k *knobs) setLastCSR(ep Endpoint, csr *x509.CertificateRequest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastCSR[ep] = csr
}

// take returns the latency and the failure (if any) that apply to one call
// of ep, consuming one pending FailNext.
func (k *knobs) take(ep Endpoint) (time.Duration, *Failure) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.latency[ep]
	if q := k.failNext[ep]; len(q) > 0 {
		f := &Failure{Status: q[0].status}
		q[0].remaining--
		if q[0].remaining <= 0 {
			q = q[1:]
		}
		if len(q) == 0 {
			delete(k.failNext, ep)
		} else {
			k.failNext[ep] = q
		}
		return d, f
	}
	if f, ok := k.failure[ep]; ok {
		return d, &f
	}
	return d, nil
}

// applyKnobs waits out the latency of ep and answers an injected failure.
// It reports whether the request was answered (or abandoned) and the
// handler must not run.
func (s *Server) applyKnobs(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	d, f := s.knobs.take(ep)
	if d > 0 && !s.sleep(r.Context(), d) {
		return true
	}
	if f == nil {
		return false
	}
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return true
	}
	msg := f.Message
	if msg == "" {
		msg = defaultFailureMessage
	}
	writeError(w, &apiError{status: f.Status, msg: msg})
	return true
}

// sleep waits d and reports whether it did; it returns false early when ctx
// is done or the server closes.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}
