package chart_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// rbacKinds are the chart's objects that make up the injector's rights,
// applied as rendered (after the one edit of a case).
var rbacKinds = []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration"}

// grant is one verb of one rule of one of the chart's roles.
type grant struct {
	kind, role string // ClusterRole or Role, and its name
	rule       int
	verb       string
	resources  []string
	apiGroups  []string
}

func (g grant) String() string {
	return fmt.Sprintf("%s %s rule %d (%s %v): %s", g.kind, g.role, g.rule, strings.Join(g.apiGroups, ","), g.resources, g.verb)
}

// TestRBACLeastPrivilege runs the injector with exactly the chart's roles
// (provider callback on, auto certificates, leader election: everything
// that needs a right) as the chart's ServiceAccount, and exercises what
// needs each right: readiness (informers, certificate Secret, caBundle),
// leader election (Lease, Event), profile status, the provider callback
// (TokenReview, Pods) and a certificate renewal. With the chart's roles
// every step passes, the API server refuses the injector nothing, and the
// audit log shows every granted verb in use. Then, for each verb of each
// rule, the same run without that verb: the API server refuses the
// injector that request, and, for all but the informers' watch verbs (an
// informer whose watch is refused falls back to relisting), a step fails.
func TestRBACLeastPrivilege(t *testing.T) {
	h := newHelm(t)
	cp := startAuditedControlPlane(t)
	ctx := t.Context()
	crds := readCRDs(t, h.chart)
	if err := applyAll(ctx, cp.client, crds); err != nil {
		t.Fatal(err)
	}
	ztsCA, ztsClient := ztsClientCertificate(t)
	var n atomic.Int32
	newCase := func(t *testing.T) *rbacCase {
		t.Helper()
		release := fmt.Sprintf("rbac-%d", n.Add(1))
		objs := h.templateAs(t, release, release, rbacValues())
		return &rbacCase{cp: cp, release: release, fullname: release + "-athenz-injector", objs: objs,
			ztsCA: ztsCA, zts: ztsClient}
	}

	base := newCase(t)
	grants := base.grants(t)
	if len(grants) == 0 {
		t.Fatal("the chart renders no rules")
	}
	t.Run("chart's roles", func(t *testing.T) {
		base.apply(t, nil)
		if step, err := base.exercise(t); err != nil {
			t.Fatalf("with the chart's roles, step %q failed: %v", step, err)
		}
		used := base.audit(t)
		if refused := used.refused(); len(refused) > 0 {
			t.Errorf("the API server refused the injector %q", refused)
		}
		for _, g := range grants {
			if !used.allowed(g) {
				t.Errorf("%s is granted but the injector never used it (audit log): remove it", g)
			}
		}
	})
	for _, g := range grants {
		t.Run("without "+g.String(), func(t *testing.T) {
			t.Parallel()
			c := newCase(t)
			c.apply(t, &g)
			step, err := c.exercise(t)
			refusal := c.audit(t).refusedOf(g)
			if refusal == "" {
				t.Errorf("the API server never refused the injector %s %v", g.verb, g.resources)
			}
			switch {
			case err != nil:
				t.Logf("step %q failed as expected: %v; refused: %s", step, firstLine(err.Error()), refusal)
			case g.verb == "watch":
				t.Logf("all steps passed by relisting; refused: %s", refusal)
			default:
				t.Errorf("every step passed without %s", g)
			}
		})
	}
}

// ztsClientCertificate is a fake ZTS's CA and the client certificate ZTS
// presents when it calls a provider.
func ztsClientCertificate(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	zts := ztsfake.NewTest(t, ztsfake.Options{})
	certPEM, keyPEM, err := zts.IssueIdentity("sys.auth", "zts")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return zts.CACertPEM(), cert
}

func rbacValues() map[string]any {
	return map[string]any{
		"provider": map[string]any{
			"enabled":  true,
			"name":     "sys.auth.k8s",
			"clientCA": map[string]any{"configMap": map[string]any{"name": "zts-ca", "key": "ca.pem"}},
		},
		"metrics": map[string]any{"enabled": false},
	}
}

// readCRDs reads the chart's crds/.
func readCRDs(t *testing.T, chart string) []*unstructured.Unstructured {
	t.Helper()
	files, err := os.ReadDir(chart + "/crds")
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(chart + "/crds/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseManifests(string(data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// rbacCase is one release of the chart with its own namespace, roles and
// injector.
type rbacCase struct {
	cp                *controlPlane
	release, fullname string
	objs              manifests
	ztsCA             []byte
	zts               tls.Certificate
}

// grants lists every verb of every rule of the chart's roles.
func (c *rbacCase) grants(t *testing.T) []grant {
	var out []grant
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range c.objs.all(kind) {
			if isHook(o) {
				continue
			}
			var r rbacv1.ClusterRole
			c.objs.get(t, kind, o.GetName(), &r)
			for i, rule := range r.Rules {
				for _, v := range rule.Verbs {
					out = append(out, grant{kind: kind, role: strings.TrimPrefix(o.GetName(), c.fullname), rule: i, verb: v,
						resources: rule.Resources, apiGroups: rule.APIGroups})
				}
			}
		}
	}
	return out
}

// isHook reports whether o is a Helm hook (the helm test's ServiceAccount
// and Role): created by `helm test`, not part of the injector's rights.
func isHook(o *unstructured.Unstructured) bool {
	return o.GetAnnotations()["helm.sh/hook"] != ""
}

// apply applies the chart's RBAC objects, ServiceAccount, Namespace and
// webhook configuration, without without's verb if set, and the ZTS CA
// the chart's provider.clientCA names.
func (c *rbacCase) apply(t *testing.T, without *grant) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, kind := range rbacKinds {
		for _, o := range c.objs.all(kind) {
			if isHook(o) {
				continue
			}
			o = o.DeepCopy()
			if without != nil && o.GetKind() == without.kind && strings.TrimPrefix(o.GetName(), c.fullname) == without.role {
				removeVerb(t, o, without.rule, without.verb)
			}
			objs = append(objs, o)
		}
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(c.release)
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	cm.SetNamespace(c.release)
	cm.SetName("zts-ca")
	if err := unstructured.SetNestedField(cm.Object, string(c.ztsCA), "data", "ca.pem"); err != nil {
		t.Fatal(err)
	}
	if err := applyAll(t.Context(), c.cp.client, append([]*unstructured.Unstructured{ns, cm}, objs...)); err != nil {
		t.Fatal(err)
	}
}

func removeVerb(t *testing.T, role *unstructured.Unstructured, rule int, verb string) {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	r := rules[rule].(map[string]any)
	verbs, _, _ := unstructured.NestedStringSlice(r, "verbs")
	verbs = slices.DeleteFunc(verbs, func(v string) bool { return v == verb })
	if len(verbs) == 0 {
		rules = slices.Delete(rules, rule, rule+1)
	} else {
		_ = unstructured.SetNestedStringSlice(r, verbs, "verbs")
		rules[rule] = r
	}
	if err := unstructured.SetNestedSlice(role.Object, rules, "rules"); err != nil {
		t.Fatal(err)
	}
}

// stepTimeout bounds each step of the exercise.
const stepTimeout = 15 * time.Second

// exercise runs the injector and everything that needs one of its rights,
// step by step; it returns the step that failed.
func (c *rbacCase) exercise(t *testing.T) (string, error) {
	t.Helper()
	ctx := t.Context()
	k := c.cp.client
	var dep appsv1.Deployment
	c.objs.get(t, "Deployment", c.fullname, &dep)
	kubeconfig := c.cp.serviceAccountKubeconfig(t, c.release, dep.Spec.Template.Spec.ServiceAccountName)

	run, err := startFromDeployment(t, c.cp.clientset, &dep, kubeconfig, stepTimeout)
	if err != nil {
		return "ready (informers, certificate Secret, caBundle)", err
	}
	if err := waitFor(ctx, func() error {
		var l coordinationv1.Lease
		if err := k.Get(ctx, client.ObjectKey{Namespace: c.release, Name: "athenz-injector.athenz.io"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	}); err != nil {
		return "leader election (Lease)", err
	}
	if err := waitFor(ctx, func() error {
		var events corev1.EventList
		if err := k.List(ctx, &events, client.InNamespace(c.release)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == "LeaderElection" {
				return nil
			}
		}
		return fmt.Errorf("no LeaderElection event among %d", len(events.Items))
	}); err != nil {
		return "leader election (Event)", err
	}

	profile := &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.release, Name: "default"},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS:      v1alpha1.ZTS{URL: "https://zts.example.com/zts/v1"},
			Identity: v1alpha1.Identity{Provider: "sys.auth.k8s", DNSSuffix: "k8s.example.com"},
		},
	}
	if err := k.Create(ctx, profile); err != nil {
		t.Fatal(err)
	}
	// Every case's injector reconciles every profile of the cluster, so
	// the audit log, not the profile, says whether this one wrote it.
	if err := c.waitAudited(ctx, t, "patch", "sidecarprofiles/status"); err != nil {
		return "profile status", err
	}

	if err := waitFor(ctx, func() error { return c.confirm(ctx, run.ProviderAddr) }); err != nil {
		return "provider callback (TokenReview, Pod, Namespace, profile)", err
	}

	// The ZTS CA copies of a cluster-wide profile (a name of this case's
	// own: every case's injector keeps copies in every namespace).
	caProfile := profile.DeepCopy()
	caProfile.ObjectMeta = metav1.ObjectMeta{Namespace: c.release, Name: "ca-" + c.release}
	caProfile.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: "zts-ca", Key: "ca.pem"}}
	if err := k.Create(ctx, caProfile); err != nil {
		t.Fatal(err)
	}
	if err := c.waitAudited(ctx, t, "create", "configmaps"); err != nil {
		return "ZTS CA copies (created)", err
	}
	var source corev1.ConfigMap
	if err := k.Get(ctx, client.ObjectKey{Namespace: c.release, Name: "zts-ca"}, &source); err != nil {
		t.Fatal(err)
	}
	source.Data["ca.pem"] += "\n# rotated\n"
	if err := k.Update(ctx, &source); err != nil {
		t.Fatal(err)
	}
	if err := c.waitAudited(ctx, t, "update", "configmaps"); err != nil {
		return "ZTS CA copies (updated)", err
	}
	if err := k.Delete(ctx, caProfile); err != nil {
		t.Fatal(err)
	}
	if err := c.waitAudited(ctx, t, "delete", "configmaps"); err != nil {
		return "ZTS CA copies (deleted)", err
	}

	var lease coordinationv1.Lease
	if err := k.Get(ctx, client.ObjectKey{Namespace: c.release, Name: "athenz-injector.athenz.io"}, &lease); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() error {
		var l coordinationv1.Lease
		if err := k.Get(ctx, client.ObjectKeyFromObject(&lease), &l); err != nil {
			return err
		}
		if l.ResourceVersion == lease.ResourceVersion {
			return fmt.Errorf("lease not renewed")
		}
		return nil
	}); err != nil {
		return "leader election (renewal)", err
	}
	if err := run.Stop(0); err != nil {
		return "clean stop", err
	}

	// A renewal: the Secret holds no usable certificate any more.
	var secret corev1.Secret
	if err := k.Get(ctx, client.ObjectKey{Namespace: c.release, Name: c.fullname + "-webhook-tls"}, &secret); err != nil {
		return "certificate Secret created", err
	}
	secret.Data = map[string][]byte{corev1.TLSCertKey: []byte("expired"), corev1.TLSPrivateKeyKey: []byte("lost")}
	if err := k.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	again, err := startFromDeployment(t, c.cp.clientset, &dep, kubeconfig, stepTimeout)
	if err != nil {
		return "ready again (certificate renewed in the Secret)", err
	}
	if err := again.Stop(0); err != nil {
		return "clean stop", err
	}
	return "", nil
}

// waitAudited waits until the audit log shows this case's injector
// succeeding at verb on resource: what several cases' injectors may do to
// one object is told apart by who did it.
func (c *rbacCase) waitAudited(ctx context.Context, t *testing.T, verb, resource string) error {
	return waitFor(ctx, func() error {
		for _, e := range c.audit(t) {
			if e.Verb == verb && e.resource() == resource && e.ResponseStatus.Code/100 == 2 {
				return nil
			}
		}
		return fmt.Errorf("the injector has not done %s %s", verb, resource)
	})
}

// confirm has the provider callback confirm a Pod of a tenant namespace,
// as ZTS would: over mutual TLS with ZTS's certificate.
func (c *rbacCase) confirm(ctx context.Context, addr string) error {
	k := c.cp.client
	tenant := c.release + "-tenant"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "web"}},
	} {
		if err := k.Create(ctx, o); err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "web-0"},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
	if err := k.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		if err := k.Create(ctx, pod); err != nil {
			return err
		}
	}
	tr, err := c.cp.clientset.CoreV1().ServiceAccounts(tenant).CreateToken(ctx, "web", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{"athenz"}, ExpirationSeconds: ptr.To[int64](600),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	body, _ := json.Marshal(provider.InstanceConfirmation{
		Provider: "sys.auth.k8s", Domain: strings.ReplaceAll(tenant, "-", "."), Service: "web", AttestationData: tr.Status.Token,
		Attributes: map[string]string{"instanceId": string(pod.UID)},
	})
	status, answer, err := postTLS(ctx, addr, body, &c.zts)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("callback answered %d %s", status, answer)
	}
	return nil
}

// postTLS POSTs an InstanceConfirmation to the callback at addr, with cert
// as client certificate if not nil. The callback's own certificate is not
// checked: these tests are about who may call it.
func postTLS(ctx context.Context, addr string, body []byte, cert *tls.Certificate) (int, string, error) {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the client's certificate is under test, not the server's
	if cert != nil {
		// Sent whatever CAs the server names, as a stranger would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+provider.PathInstance, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(buf.String()), nil
}

func waitFor(ctx context.Context, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", stepTimeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// auditEvent is what the tests read of an audit log line.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		APIGroup    string `json:"apiGroup"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditEvents are the requests of one ServiceAccount.
type auditEvents []auditEvent

// audit reads the requests of this case's ServiceAccount.
func (c *rbacCase) audit(t *testing.T) auditEvents {
	t.Helper()
	b, err := os.ReadFile(c.cp.auditLog)
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	// The API server may be writing a line as it is read: only lines
	// that end in a newline are whole (the next read gets the rest).
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	user := "system:serviceaccount:" + c.release + ":" + c.fullname
	var out auditEvents
	for line := range bytes.Lines(b) {
		var e auditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("audit log line %q: %v", line, err)
		}
		if e.User.Username == user && e.ObjectRef != nil && e.ResponseStatus != nil {
			out = append(out, e)
		}
	}
	return out
}

func (e auditEvent) resource() string {
	if e.ObjectRef.Subresource != "" {
		return e.ObjectRef.Resource + "/" + e.ObjectRef.Subresource
	}
	return e.ObjectRef.Resource
}

func (e auditEvent) String() string {
	return fmt.Sprintf("%s %s %s/%s (group %q): %d", e.Verb, e.resource(), e.ObjectRef.Namespace, e.ObjectRef.Name, e.ObjectRef.APIGroup, e.ResponseStatus.Code)
}

func (e auditEvent) matches(g grant) bool {
	return e.Verb == g.verb && slices.Contains(g.resources, e.resource()) && slices.Contains(g.apiGroups, e.ObjectRef.APIGroup)
}

// refused lists the requests the API server refused (403).
func (es auditEvents) refused() []string {
	var out []string
	for _, e := range es {
		if e.ResponseStatus.Code == http.StatusForbidden {
			out = append(out, e.String())
		}
	}
	return out
}

// refusedOf is the first refused request that g would have allowed, or "".
func (es auditEvents) refusedOf(g grant) string {
	for _, e := range es {
		if e.ResponseStatus.Code == http.StatusForbidden && e.matches(g) {
			return e.String()
		}
	}
	return ""
}

// allowed reports whether a request that g allows was authorized (any
// answer but 403: a get of a Secret not created yet is a 404).
func (es auditEvents) allowed(g grant) bool {
	for _, e := range es {
		if e.ResponseStatus.Code != http.StatusForbidden && e.matches(g) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
