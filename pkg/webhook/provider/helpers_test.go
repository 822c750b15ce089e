package provider_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// The cluster's setup: a default SidecarProfile in the injector's
// namespace for the provider sys.auth.k8s.
const (
	injectorNS   = "athenz-injector"
	providerName = "sys.auth.k8s"
	audience     = "athenz-provider"
	dnsSuffix    = "k8s.example.com"
	trustDomain  = "cluster.local"
)

func clusterProfile(namespace, name string) *v1alpha1.SidecarProfile {
	return &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS: v1alpha1.ZTS{URL: "https://zts.example.com:4443/zts/v1"},
			Identity: v1alpha1.Identity{
				Provider:      providerName,
				DNSSuffix:     dnsSuffix,
				TokenAudience: audience,
				TrustDomain:   trustDomain,
			},
		},
	}
}

func setupProfiles(ctx context.Context) error {
	if err := cp.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: injectorNS}}); err != nil {
		return err
	}
	p := clusterProfile(injectorNS, "default")
	if err := cp.k8s.Create(ctx, p); err != nil {
		return fmt.Errorf("creating SidecarProfile %s/default: %w", injectorNS, err)
	}
	return waitCached(ctx, client.ObjectKeyFromObject(p), &v1alpha1.SidecarProfile{}, func(client.Object) bool { return true })
}

// waitCached waits until the cache has key and ok says the cached object
// is as expected.
func waitCached(ctx context.Context, key client.ObjectKey, obj client.Object, ok func(client.Object) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := cp.reader.Get(ctx, key, obj)
		if err == nil && ok(obj) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cache does not show %T %s as expected (last error: %v)", obj, key, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var nsCounter atomic.Int32

// uniqueNamespace returns a new namespace name starting with base.
func uniqueNamespace(base string) string {
	return fmt.Sprintf("%s-%d", base, nsCounter.Add(1))
}

// podSpec describes a Pod to create. envtest runs no controllers or
// kubelet, so the test creates the namespace, the service account and the
// Pod's status itself.
type podSpec struct {
	namespace      string
	name           string
	serviceAccount string
	annotations    map[string]string
	labels         map[string]string
	ip             string
	finalizers     []string
}

func newPod(t *testing.T, s podSpec) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}
	if err := cp.k8s.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", s.namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.serviceAccount}}
	if err := cp.k8s.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating service account %s/%s: %v", s.namespace, s.serviceAccount, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.namespace, Name: s.name,
			Annotations: s.annotations, Labels: s.labels, Finalizers: s.finalizers,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: s.serviceAccount,
			Containers:         []corev1.Container{{Name: "app", Image: "example.com/app:1"}},
		},
	}
	if err := cp.k8s.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s/%s: %v", s.namespace, s.name, err)
	}
	if len(s.finalizers) > 0 {
		t.Cleanup(func() { release(t, pod) })
	}
	if s.ip != "" {
		pod.Status.PodIP = s.ip
		pod.Status.PodIPs = []corev1.PodIP{{IP: s.ip}}
		pod.Status.Phase = corev1.PodRunning
		if err := cp.k8s.Status().Update(ctx, pod); err != nil {
			t.Fatalf("setting the IP of pod %s/%s: %v", s.namespace, s.name, err)
		}
	}
	if err := waitCached(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}, func(o client.Object) bool {
		return o.GetUID() == pod.UID && o.(*corev1.Pod).Status.PodIP == s.ip
	}); err != nil {
		t.Fatal(err)
	}
	return pod
}

// release removes the finalizers of pod so that a deleted Pod goes away.
func release(t *testing.T, pod *corev1.Pod) {
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	err := cp.k8s.Patch(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}},
		client.RawPatch(types.MergePatchType, patch))
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("removing the finalizers of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// deletePod deletes pod and waits until the API server no longer has it.
func deletePod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if err := cp.k8s.Delete(t.Context(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cp.k8s.Get(t.Context(), client.ObjectKeyFromObject(pod), &corev1.Pod{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s still exists after deletion (last error: %v)", pod.Namespace, pod.Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mintToken asks the TokenRequest API for a token of the Pod's service
// account with aud, bound to the Pod unless unbound, valid for 10 minutes
// (the API's minimum).
func mintToken(t *testing.T, pod *corev1.Pod, aud string, unbound bool) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{aud},
		ExpirationSeconds: ptr.To[int64](600),
	}}
	if !unbound {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	got, err := cp.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(t.Context(), pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s bound to pod %s: %v", pod.Namespace, pod.Spec.ServiceAccountName, pod.Name, err)
	}
	return got.Status.Token
}

// agedToken is token as if it had been issued an hour ago and had expired
// 20 minutes ago: its claims with older times, signed again with the API
// server's own service account key. The TokenRequest API issues no token
// shorter than 10 minutes, so this is how a test gets an expired token
// that the API server itself refuses for its age.
func agedToken(t *testing.T, token string) string {
	t.Helper()
	return forgeToken(t, token, cp.saKey, func(claims map[string]any) {
		now := time.Now().Unix()
		claims["iat"], claims["nbf"], claims["exp"] = now-3600, now-3600, now-1200
	})
}

// forgeToken is token with its claims edited and signed with key (nil:
// unsigned, "alg":"none"). With the API server's key it is a token the API
// server could have issued; with another key, one from a foreign issuer.
func forgeToken(t *testing.T, token string, key crypto.Signer, edit func(claims map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	if edit != nil {
		edit(claims)
	}
	if raw, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	header := parts[0]
	if key == nil {
		header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	}
	signed := header + "." + base64.RawURLEncoding.EncodeToString(raw)
	if key == nil {
		return signed + "."
	}
	sig, err := signJWS(key, signed)
	if err != nil {
		t.Fatalf("signing the token: %v", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// checkOneOf runs one request and wants status with exactly one of msgs
// as the message: for answers that depend on how far the API server's own
// informers are.
func checkOneOf(t *testing.T, h http.Handler, path string, req provider.InstanceConfirmation, status int, msgs ...string) {
	t.Helper()
	a := post(t, h, path, req)
	msg := a.message()
	if a.status != status || !slices.Contains(msgs, msg) {
		t.Errorf("POST %s for %s.%s: %d %q, want %d with one of %q", path, req.Domain, req.Service, a.status, msg, status, msgs)
	}
}

// request is the confirmation ZTS sends for the sidecar of pod registering
// as domain.service: the SANs of the sidecar's CSR.
func request(pod *corev1.Pod, domain, service, token string) provider.InstanceConfirmation {
	uid := string(pod.UID)
	return provider.InstanceConfirmation{
		Provider:        providerName,
		Domain:          domain,
		Service:         service,
		AttestationData: token,
		Attributes: map[string]string{
			"instanceId": uid,
			"sanDNS":     tokens.ServiceDNSName(domain, service, dnsSuffix) + "," + tokens.InstanceIDDNSName(uid, dnsSuffix),
			"sanIP":      pod.Status.PodIP,
			"sanURI":     tokens.ServiceSPIFFEURI(trustDomain, pod.Namespace, domain, service),
			"clientIP":   "10.0.0.1",
		},
	}
}

// logBuffer collects a handler's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// newHandler returns a handler reading the shared cache (live reads on a
// miss) with the cluster's settings; edit changes the options.
func newHandler(t *testing.T, logs *logBuffer, edit func(*provider.Options)) *provider.Handler {
	t.Helper()
	o := provider.Options{
		Reader:            cp.reader,
		LiveReader:        cp.k8s,
		TokenReviews:      cp.cs.AuthenticationV1().TokenReviews(),
		Audience:          audience,
		InjectorNamespace: injectorNS,
		Provider:          providerName,
	}
	if logs != nil {
		o.Logger = logs.logger()
	}
	if edit != nil {
		edit(&o)
	}
	h, err := provider.NewHandler(o)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

// answer is a handler's answer.
type answer struct {
	status int
	body   []byte
}

// message is the "message" of an error answer.
func (a answer) message() string {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Code != a.status {
		return fmt.Sprintf("(not a {code,message} answer with code %d: %s)", a.status, a.body)
	}
	return e.Message
}

func post(t *testing.T, h http.Handler, path string, body any) answer {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST %s: Content-Type %q, want application/json", path, ct)
	}
	return answer{rec.Code, rec.Body.Bytes()}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
