package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// apiLog counts the requests that reach the API server through a
// rest.Config.
type apiLog struct {
	mu       sync.Mutex
	requests []string // "METHOD path"
}

func (l *apiLog) wrap(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			l.mu.Lock()
			l.requests = append(l.requests, r.Method+" "+r.URL.Path)
			l.mu.Unlock()
			return rt.RoundTrip(r)
		})
	}
	return c
}

func (l *apiLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.requests
	l.requests = nil
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingReader counts the Pods read from the cache.
type countingReader struct {
	client.Reader
	mu   sync.Mutex
	pods int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Pod); ok {
		c.mu.Lock()
		c.pods++
		c.mu.Unlock()
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.pods
	c.pods = 0
	return n
}

// countedHandler is a handler whose every API request and cached Pod read
// is counted.
func countedHandler(t *testing.T, edit func(*provider.Options)) (*provider.Handler, *apiLog, *countingReader) {
	t.Helper()
	api := &apiLog{}
	cfg := api.wrap(cp.cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	live, err := client.New(cfg, client.Options{Scheme: cp.k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	cached := &countingReader{Reader: cp.reader}
	h := newHandler(t, nil, func(o *provider.Options) {
		o.Reader, o.LiveReader, o.TokenReviews = cached, live, cs.AuthenticationV1().TokenReviews()
		if edit != nil {
			edit(o)
		}
	})
	return h, api, cached
}

// TestRefusedTokensLearnNothing: every attestation token the API server
// does not accept, whoever it names, gets the same short answer, costs one
// TokenReview and nothing else: no Pod is read, from the cache or the API
// server, on behalf of a token nobody vouched for.
func TestRefusedTokensLearnNothing(t *testing.T) {
	ns := uniqueNamespace("vault")
	pod := newPod(t, podSpec{namespace: ns, name: "vault-0", serviceAccount: "vault", ip: "10.8.0.1"})
	genuine := mintToken(t, pod, audience, false)
	const victimUID = "11111111-2222-3333-4444-555555555555"
	// Claims naming the Pod (and a made-up uid), as a stranger would write
	// them to make the callback look it up.
	naming := func(claims map[string]any) {
		claims["kubernetes.io"] = map[string]any{
			"namespace":      ns,
			"pod":            map[string]any{"name": "vault-0", "uid": victimUID},
			"serviceaccount": map[string]any{"name": "vault", "uid": victimUID},
		}
	}
	foreignKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokensToRefuse := map[string]string{
		"unsigned, naming the Pod":            forgeToken(t, genuine, nil, naming),
		"foreign issuer, naming the Pod":      forgeToken(t, genuine, foreignKey, naming),
		"the API server's key, edited claims": forgeToken(t, genuine, cp.saKey, func(c map[string]any) { naming(c); c["sub"] = "system:serviceaccount:" + ns + ":vault" }),
		"expired":                             agedToken(t, genuine),
		"another audience":                    mintToken(t, pod, "vault", false),
		"garbage":                             "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln",
	}
	h, api, cached := countedHandler(t, func(o *provider.Options) { o.RefusalBurst = 100 })
	api.take()

	var first []byte
	for name, token := range tokensToRefuse {
		t.Run(name, func(t *testing.T) {
			req := request(pod, tokens.NamespaceToDomain(ns), "vault", token)
			a := post(t, h, provider.PathInstance, req)
			if a.status != http.StatusForbidden || a.message() != provider.MsgTokenRefused {
				t.Fatalf("POST /instance: %d %s, want 403 %q", a.status, a.body, provider.MsgTokenRefused)
			}
			if first == nil {
				first = a.body
			} else if string(a.body) != string(first) {
				t.Errorf("answer %s differs from the first refused token's %s", a.body, first)
			}
			for _, secret := range []string{ns, "vault-0", victimUID, string(pod.UID)} {
				if strings.Contains(string(a.body), secret) {
					t.Errorf("answer %s names %q", a.body, secret)
				}
			}
			if got := api.take(); len(got) != 1 || got[0] != "POST /apis/authentication.k8s.io/v1/tokenreviews" {
				t.Errorf("API requests = %q, want the one TokenReview", got)
			}
			if n := cached.take(); n != 0 {
				t.Errorf("%d Pods read from the cache, want none", n)
			}
		})
	}

	// The genuine token, for contrast: one TokenReview and a cached read.
	a := post(t, h, provider.PathInstance, request(pod, tokens.NamespaceToDomain(ns), "vault", genuine))
	if a.status != http.StatusOK {
		t.Fatalf("genuine token: %d %s, want 200", a.status, a.body)
	}
	if got := api.take(); len(got) != 1 {
		t.Errorf("genuine token: API requests = %q, want the one TokenReview (the Pod is cached)", got)
	}
	if n := cached.take(); n != 1 {
		t.Errorf("genuine token: %d Pods read from the cache, want 1", n)
	}
}

// TestRefusalRateLimit: a client whose requests keep being refused gets
// 429 without a TokenReview until its bucket refills; other clients, and
// the same client once refilled, are answered as usual; confirmations take
// nothing from the bucket.
func TestRefusalRateLimit(t *testing.T) {
	ns := uniqueNamespace("limit")
	pod := newPod(t, podSpec{namespace: ns, name: "web-0", serviceAccount: "web", ip: "10.9.0.1"})
	domain := tokens.NamespaceToDomain(ns)
	good := request(pod, domain, "web", mintToken(t, pod, audience, false))
	bad := request(pod, domain, "web", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln")
	clock := tokens.NewFakeClock(time.Now())
	const burst = 3
	h, api, _ := countedHandler(t, func(o *provider.Options) {
		o.RefusalRate, o.RefusalBurst, o.Now = 0.5, burst, clock.Now
	})
	api.take()

	postFrom := func(client string, req provider.InstanceConfirmation) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, provider.PathInstance, strings.NewReader(mustJSON(t, req)))
		r.RemoteAddr = client + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for i := range 5 {
		if rec := postFrom("192.0.2.1", good); rec.Code != http.StatusOK {
			t.Fatalf("confirmation %d: %d %s, want 200 (confirmations take nothing from the bucket)", i, rec.Code, rec.Body)
		}
	}
	for i := range burst {
		if rec := postFrom("192.0.2.1", bad); rec.Code != http.StatusForbidden {
			t.Fatalf("refusal %d: %d %s, want 403", i, rec.Code, rec.Body)
		}
	}
	api.take()
	for _, req := range []provider.InstanceConfirmation{bad, good} {
		rec := postFrom("192.0.2.1", req)
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("after %d refusals: %d %s, want 429", burst, rec.Code, rec.Body)
		}
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 3 {
			t.Errorf("Retry-After %q, want 1 to 3 seconds (one refusal refills in 2s)", rec.Header().Get("Retry-After"))
		}
	}
	if got := api.take(); len(got) != 0 {
		t.Errorf("throttled requests made API requests %q, want none", got)
	}
	if rec := postFrom("192.0.2.2", bad); rec.Code != http.StatusForbidden {
		t.Errorf("another client: %d, want 403: the limit is per client", rec.Code)
	}
	clock.Advance(2 * time.Second)
	if rec := postFrom("192.0.2.1", good); rec.Code != http.StatusOK {
		t.Errorf("after the bucket refilled: %d %s, want 200", rec.Code, rec.Body)
	}
}
