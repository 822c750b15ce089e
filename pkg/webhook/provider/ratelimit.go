package provider

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the refusal limit (Options.RefusalRate, RefusalBurst).
const (
	DefaultRefusalRate  = 5.0
	DefaultRefusalBurst = 20
)

// maxClients bounds the limiter's memory; a client idle long enough to have
// its whole burst back is forgotten first.
const maxClients = 4096

// refusals limits how many refused requests each client may make: every
// refusal takes a token from the client's bucket, and a client with an
// empty bucket is answered 429 before anything is asked of the API server.
// Confirmed instances take nothing, so a client that behaves is never
// slowed down by it. Clients are told apart by IP address; behind mutual
// TLS that is ZTS.
type refusals struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex // guards clients
	clients map[string]*rate.Limiter
}

func newRefusals(perSecond float64, burst int, now func() time.Time) *refusals {
	return &refusals{limit: rate.Limit(perSecond), burst: burst, now: now, clients: map[string]*rate.Limiter{}}
}

// clientKey is the IP of a request's RemoteAddr.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// throttled reports whether the client has used up its refusals, and for
// how long to wait.
func (r *refusals) throttled(client string) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.clients[client]
	if !ok {
		return false, 0
	}
	tokens := l.TokensAt(r.now())
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(r.limit) * float64(time.Second))
}

// refused takes one token from the client's bucket.
func (r *refusals) refused(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	l, ok := r.clients[client]
	if !ok {
		if len(r.clients) >= maxClients {
			r.forgetIdle(now)
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.clients[client] = l
	}
	l.AllowN(now, 1)
}

// forgetIdle drops the clients whose bucket is full again; if none is, it
// drops them all rather than grow without bound.
func (r *refusals) forgetIdle(now time.Time) {
	for k, l := range r.clients {
		if l.TokensAt(now) >= float64(r.burst) {
			delete(r.clients, k)
		}
	}
	if len(r.clients) >= maxClients {
		clear(r.clients)
	}
}
