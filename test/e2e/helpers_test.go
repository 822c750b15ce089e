package e2e_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/test/framework"
)

// appCurl calls from inside a container of a Pod with the app image's
// curl, through `kubectl exec`: what an app sees.
type appCurl struct {
	ns, pod, container string
}

func inApp(pod *corev1.Pod) appCurl {
	return appCurl{ns: pod.Namespace, pod: pod.Name, container: framework.AppContainer}
}

// do runs curl with args (the URL last) and returns the HTTP status and
// the body; it fails the test if curl itself fails.
func (c appCurl) do(t *testing.T, args ...string) (int, []byte) {
	t.Helper()
	out, err := cluster.Exec(t.Context(), c.ns, c.pod, c.container, append([]string{"curl", "-sS", "-w", "\n%{http_code}"}, args...)...)
	if err != nil {
		t.Fatalf("in %s/%s: curl %s: %v", c.ns, c.pod, strings.Join(args, " "), err)
	}
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		t.Fatalf("curl %s: no status in %q", strings.Join(args, " "), out)
	}
	code, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %s: status %q: %v", strings.Join(args, " "), out[i+1:], err)
	}
	return code, []byte(out[:i])
}

// want runs curl and fails unless the status is want; it returns the body.
func (c appCurl) want(t *testing.T, want int, args ...string) []byte {
	t.Helper()
	code, body := c.do(t, args...)
	if code != want {
		t.Fatalf("in %s/%s: curl %s: %d %s, want %d", c.ns, c.pod, strings.Join(args, " "), code, body, want)
	}
	return body
}

// cat returns a file of the container, read as the container's user.
func (c appCurl) cat(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	out, err := cluster.Exec(t.Context(), c.ns, c.pod, c.container, "cat", path)
	return []byte(out), err
}

func decode(t *testing.T, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, body)
	}
}

// tokenFields splits an Athenz token "v=Z1;d=sports;r=reader;..." into
// its fields.
func tokenFields(tok string) map[string]string {
	f := map[string]string{}
	for part := range strings.SplitSeq(tok, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			f[k] = v
		}
	}
	return f
}

type accessClaims struct {
	Sub string            `json:"sub"`
	Aud string            `json:"aud"`
	Scp []string          `json:"scp"`
	Cnf map[string]string `json:"cnf"`
	Exp int64             `json:"exp"`
}

// verifyJWT checks an RS256 JWT's signature against the PEM public key
// and returns its claims.
func verifyJWT(t *testing.T, what, jwt string, pubPEM []byte) accessClaims {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("%s: access token is not a JWT: %q", what, jwt)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	decodeSegment(t, what, parts[0], &hdr)
	if hdr.Alg != "RS256" {
		t.Fatalf("%s: alg %q, want RS256 (the fake's default)", what, hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("%s: signature: %v", what, err)
	}
	verifyRSA(t, what, pubPEM, parts[0]+"."+parts[1], sig)
	var c accessClaims
	decodeSegment(t, what, parts[1], &c)
	return c
}

// verifyRoleToken checks a role token's signature (RSA PKCS#1 v1.5 over
// SHA-256 of the text before ";s=", YBase64) with ZTS's public key.
func verifyRoleToken(t *testing.T, what, tok string, pubPEM []byte) {
	t.Helper()
	unsigned, sig, ok := strings.Cut(tok, ";s=")
	if !ok {
		t.Fatalf("%s: no signature in %q", what, tok)
	}
	raw, err := tokens.YBase64.DecodeString(sig)
	if err != nil {
		t.Fatalf("%s: signature: %v", what, err)
	}
	verifyRSA(t, what, pubPEM, unsigned, raw)
}

// verifyRSA checks an RSA PKCS#1 v1.5 signature over SHA-256 of signed
// with the PEM public key of the fake ZTS (RSA by default).
func verifyRSA(t *testing.T, what string, pubPEM []byte, signed string, sig []byte) {
	t.Helper()
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		t.Fatalf("the fake ZTS's signing key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("%s: a %T key, want RSA (the fake's default)", what, pub)
	}
	sum := sha256.Sum256([]byte(signed))
	if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("%s: the signature does not verify with ZTS's key: %v", what, err)
	}
}

func decodeSegment(t *testing.T, what, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("%s: JWT segment: %v", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: JWT segment %s: %v", what, b, err)
	}
}

// parseCert parses the first PEM certificate of data.
func parseCert(t *testing.T, what string, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM in %q", what, data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

type certificate = x509.Certificate

func verifyOptions(roots *x509.CertPool) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}

// newNamespace creates a namespace for one test, with ServiceAccount
// framework.AppName, and grants its Athenz service (<namespace>.web) the
// chart profile's prefetched role, so that its sidecars become ready. It
// deletes the namespace when the test ends.
func newNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := cluster.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("namespace %s at failure:\n%s", name, cluster.DiagnoseNamespace(context.Background(), name))
		}
		_ = cluster.Client.Delete(context.Background(), ns)
	})
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: framework.AppName}}
	if err := cluster.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	cluster.ZTS.Grant(framework.Domain, framework.Role, name+"."+framework.Service)
}

// injectedPod is an app Pod that opts in, in namespace ns.
func injectedPod(ns, name string, annotations map[string]string) *corev1.Pod {
	a := map[string]string{framework.AnnotationInject: "true"}
	maps.Copy(a, annotations)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: a, Labels: map[string]string{"app": name}},
		Spec:       framework.AppPodSpec(framework.AppName),
	}
}

// createPod creates pod and returns it as stored.
func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if err := cluster.Client.Create(t.Context(), pod); err != nil {
		t.Fatalf("creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return pod
}

// waitReady waits up to timeout for the Pod to be Ready.
func waitReady(t *testing.T, pod *corev1.Pod, timeout time.Duration) *corev1.Pod {
	t.Helper()
	p, err := cluster.WaitPod(t.Context(), pod.Namespace, pod.Name, timeout, "Ready", framework.PodReady)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withTimeout is the test's context, ending after d.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func key(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}
