package provider_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// check runs one request and compares the answer: want 200 with the
// confirmation echoed (without the token), or status with a message that
// contains every one of msgs.
func check(t *testing.T, h http.Handler, path string, req provider.InstanceConfirmation, status int, msgs ...string) {
	t.Helper()
	a := post(t, h, path, req)
	if a.status != status {
		t.Fatalf("POST %s for %s.%s: %d %s, want %d %q", path, req.Domain, req.Service, a.status, a.body, status, msgs)
	}
	if status == http.StatusOK {
		var got provider.InstanceConfirmation
		if err := json.Unmarshal(a.body, &got); err != nil {
			t.Fatalf("POST %s: answer %s is not an InstanceConfirmation: %v", path, a.body, err)
		}
		if got.Provider != req.Provider || got.Domain != req.Domain || got.Service != req.Service ||
			got.AttestationData != "" || got.Attributes["instanceId"] != req.Attributes["instanceId"] {
			t.Errorf("POST %s: answer %s, want the confirmation without attestationData", path, a.body)
		}
		return
	}
	msg := a.message()
	t.Logf("POST %s: %d %s", path, a.status, msg)
	for _, m := range msgs {
		if !strings.Contains(msg, m) {
			t.Errorf("POST %s: message %q, want it to contain %q", path, msg, m)
		}
	}
}

func TestConfirm(t *testing.T) {
	ns := uniqueNamespace("team-a")
	domain := tokens.NamespaceToDomain(ns) // team.a.<n>
	web := newPod(t, podSpec{namespace: ns, name: "web-0", serviceAccount: "web", ip: "10.1.0.5"})
	db := newPod(t, podSpec{namespace: ns, name: "db-0", serviceAccount: "db", ip: "10.1.0.6"})
	webToken := mintToken(t, web, audience, false)
	dbToken := mintToken(t, db, audience, false)
	otherAudience := mintToken(t, web, "other-audience", false)
	unbound := mintToken(t, web, audience, true)
	expired := agedToken(t, webToken)
	webUID, dbUID := string(web.UID), string(db.UID)

	good := func() provider.InstanceConfirmation { return request(web, domain, "web", webToken) }
	with := func(edit func(c *provider.InstanceConfirmation)) provider.InstanceConfirmation {
		c := good()
		edit(&c)
		return c
	}

	logs := &logBuffer{}
	h := newHandler(t, logs, nil)
	tests := []struct {
		name   string
		path   string
		req    provider.InstanceConfirmation
		status int
		msgs   []string
	}{
		{name: "register", path: provider.PathInstance, req: good(), status: http.StatusOK},
		{name: "refresh", path: provider.PathRefresh, req: good(), status: http.StatusOK},
		{name: "identityToken JSON", path: provider.PathInstance, status: http.StatusOK,
			req: with(func(c *provider.InstanceConfirmation) { c.AttestationData = `{"identityToken":"` + webToken + `"}` })},
		{name: "instance id only from SAN DNS", path: provider.PathInstance, status: http.StatusOK,
			req: with(func(c *provider.InstanceConfirmation) { delete(c.Attributes, "instanceId") })},
		{name: "no SANs", path: provider.PathInstance, status: http.StatusOK,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes = map[string]string{"instanceId": webUID}
			})},
		{name: "older SPIFFE form and athenz instance id URI", path: provider.PathInstance, status: http.StatusOK,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes["sanURI"] = "spiffe://" + domain + "/sa/web,athenz://instanceid/" + providerName + "/" + webUID
			})},
		{name: "names in another case", path: provider.PathInstance, status: http.StatusOK,
			req: with(func(c *provider.InstanceConfirmation) { c.Domain = strings.ToUpper(c.Domain) })},

		// Every token the API server refuses gets the same answer
		// (TestRefusedTokensLearnNothing checks it in full).
		{name: "wrong audience", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.AttestationData = otherAudience }),
			msgs: []string{provider.MsgTokenRefused}},
		{name: "expired token", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.AttestationData = expired }),
			msgs: []string{provider.MsgTokenRefused}},
		{name: "expired token on refresh", path: provider.PathRefresh, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.AttestationData = expired }),
			msgs: []string{provider.MsgTokenRefused}},
		{name: "token not bound to a Pod", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.AttestationData = unbound }),
			msgs: []string{"pod binding: ", ns + "/web"}},
		{name: "token the API server never issued", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.AttestationData = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln" }),
			msgs: []string{provider.MsgTokenRefused}},
		{name: "namespace maps to another domain", path: provider.PathInstance, status: http.StatusForbidden,
			req: request(web, "other.team", "web", webToken),
			msgs: []string{`domain: namespace "` + ns + `" maps to domain "` + domain + `", not "other.team"`,
				injectorNS + "/default"}},
		{name: "another service account", path: provider.PathInstance, status: http.StatusForbidden,
			req:  request(db, domain, "web", dbToken),
			msgs: []string{"service account: ", `runs as service account "db", which maps to service "db", not "web"`}},
		{name: "token of another Pod", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) { c.AttestationData = dbToken }),
			// the db Pod, as its token says, is not web
			msgs: []string{"service account: ", `"db"`}},
		{name: "instance id of another Pod", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.Attributes["instanceId"] = dbUID }),
			msgs: []string{"instance id: ", dbUID, "is not the uid " + webUID}},
		{name: "instance id in SAN DNS of another Pod", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes["sanDNS"] = tokens.InstanceIDDNSName(dbUID, dnsSuffix)
			}),
			msgs: []string{"instance id: ", "SAN DNS"}},
		{name: "no instance id", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes = map[string]string{"sanIP": web.Status.PodIP}
			}),
			msgs: []string{"instance id: the request names none"}},
		{name: "SAN IP not the Pod's", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.Attributes["sanIP"] = "10.1.0.5,10.9.9.9" }),
			msgs: []string{"san ip: 10.9.9.9 is not an IP of pod " + ns + "/web-0 (its IPs: 10.1.0.5)"}},
		{name: "SAN IP of another Pod", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.Attributes["sanIP"] = db.Status.PodIP }),
			msgs: []string{"san ip: "}},
		{name: "SAN DNS of another service", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes["sanDNS"] += "," + tokens.ServiceDNSName(domain, "db", dnsSuffix)
			}),
			msgs: []string{"san dns: ", "db."}},
		{name: "SAN DNS under another suffix", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes["sanDNS"] = tokens.ServiceDNSName(domain, "web", "evil.example.com")
			}),
			msgs: []string{"san dns: "}},
		{name: "SAN URI of another namespace", path: provider.PathInstance, status: http.StatusForbidden,
			req: with(func(c *provider.InstanceConfirmation) {
				c.Attributes["sanURI"] = tokens.ServiceSPIFFEURI(trustDomain, "other", domain, "web")
			}),
			msgs: []string{"san uri: "}},
		{name: "another provider", path: provider.PathInstance, status: http.StatusForbidden,
			req:  with(func(c *provider.InstanceConfirmation) { c.Provider = "sys.auth.other" }),
			msgs: []string{`provider: this provider service is "sys.auth.k8s", not "sys.auth.other"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, h, tt.path, tt.req, tt.status, tt.msgs...)
		})
	}

	t.Run("logs", func(t *testing.T) {
		out := logs.String()
		for _, tok := range []string{webToken, dbToken, otherAudience, unbound, expired} {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			if strings.Contains(out, sig) {
				t.Fatalf("the log holds a service account token:\n%s", out)
			}
		}
		for _, want := range []string{`"instance confirmed"`, `"instance refused"`, `"check"="san ip"`, `"pod"="web-0"`} {
			if !strings.Contains(out, want) {
				t.Errorf("the log has no %s:\n%s", want, out)
			}
		}
	})
}

func TestConfirmDeletedPod(t *testing.T) {
	ns := uniqueNamespace("team-b")
	domain := tokens.NamespaceToDomain(ns)
	h := newHandler(t, nil, nil)

	t.Run("deleted", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "gone", serviceAccount: "web", ip: "10.2.0.1"})
		token := mintToken(t, pod, audience, false)
		check(t, h, provider.PathInstance, request(pod, domain, "web", token), http.StatusOK)
		deletePod(t, pod)
		// Depending on whether the API server's own Pod informer has seen
		// the deletion yet, TokenReview refuses the token ("invalidated":
		// the one answer for refused tokens) or accepts it and the Pod
		// lookup finds no Pod of that uid.
		for _, path := range []string{provider.PathInstance, provider.PathRefresh} {
			checkOneOf(t, h, path, request(pod, domain, "web", token), http.StatusForbidden,
				provider.MsgTokenRefused, "pod deleted: pod "+ns+"/gone (uid "+string(pod.UID)+"), to which the token is bound, does not exist")
		}
	})

	t.Run("recreated with the same name", func(t *testing.T) {
		old := newPod(t, podSpec{namespace: ns, name: "web-0", serviceAccount: "web", ip: "10.2.0.2"})
		token := mintToken(t, old, audience, false)
		deletePod(t, old)
		pod := newPod(t, podSpec{namespace: ns, name: "web-0", serviceAccount: "web", ip: "10.2.0.2"})
		req := request(pod, domain, "web", token)
		checkOneOf(t, h, provider.PathInstance, req, http.StatusForbidden,
			provider.MsgTokenRefused, "pod deleted: the token is bound to pod "+ns+"/web-0 with uid "+string(old.UID)+", which was deleted; the Pod of that name now has uid "+string(pod.UID))
		// The new Pod's own token works.
		check(t, h, provider.PathInstance, request(pod, domain, "web", mintToken(t, pod, audience, false)), http.StatusOK)
	})

	t.Run("terminating", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "leaving", serviceAccount: "web", ip: "10.2.0.3",
			finalizers: []string{"example.com/hold"}})
		token := mintToken(t, pod, audience, false)
		if err := cp.k8s.Delete(t.Context(), pod); err != nil {
			t.Fatalf("deleting pod: %v", err)
		}
		// The API server still accepts the token for a minute after the
		// deletion; the callback refuses at once.
		if err := waitCached(t.Context(), client.ObjectKeyFromObject(pod), &corev1.Pod{}, func(o client.Object) bool {
			return o.GetDeletionTimestamp() != nil
		}); err != nil {
			t.Fatal(err)
		}
		check(t, h, provider.PathInstance, request(pod, domain, "web", token), http.StatusForbidden,
			"pod deleted: pod "+ns+"/leaving is terminating")
	})
}

func TestConfirmProfiles(t *testing.T) {
	ns := uniqueNamespace("shop")
	nsDomain := tokens.NamespaceToDomain(ns)
	h := newHandler(t, nil, nil)

	thisNamespace := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	// A default profile in the namespace wins over the injector's; what it
	// gives must be allowed by a profile of the injector's namespace that
	// serves the namespace: here one that gives k8s.<namespace>.
	own := clusterProfile(ns, "default")
	own.Spec.DomainTemplate = "k8s.{namespace}"
	k8sPrefix := clusterProfile(injectorNS, "k8s-"+ns)
	k8sPrefix.Spec.DomainTemplate = "k8s.{namespace}"
	k8sPrefix.Spec.IdentityPolicy.NamespaceSelector = thisNamespace
	// ZTS's built-in provider's convention, for Pods that ask for it, in
	// this namespace only.
	builtin := clusterProfile(injectorNS, "builtin-"+ns)
	builtin.Spec.DomainTemplate = tokens.ServiceAccountDomainTemplate
	builtin.Spec.ServiceTemplate = tokens.ServiceAccountServiceTemplate
	builtin.Spec.IdentityPolicy.NamespaceSelector = thisNamespace
	keyFile := clusterProfile(ns, "key-file")
	keyFile.Spec.Identity = v1alpha1.Identity{Mode: v1alpha1.IdentityKeyFile,
		KeyFile: &v1alpha1.KeyFileIdentity{Secret: v1alpha1.KeyReference{Name: "key", Key: "key.pem"}}}
	otherProvider := clusterProfile(ns, "other-provider")
	otherProvider.Spec.Identity.Provider = "sys.auth.other"
	newPod(t, podSpec{namespace: ns, name: "seed", serviceAccount: "seed"}) // creates the namespace
	for _, p := range []*v1alpha1.SidecarProfile{own, k8sPrefix, builtin, keyFile, otherProvider} {
		if err := cp.k8s.Create(t.Context(), p); err != nil {
			t.Fatalf("creating SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
		}
		t.Cleanup(func() { _ = cp.k8s.Delete(context.Background(), p) })
		if err := waitCached(t.Context(), client.ObjectKeyFromObject(p), &v1alpha1.SidecarProfile{}, func(client.Object) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("namespace profile", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "web", serviceAccount: "web", ip: "10.3.0.1"})
		token := mintToken(t, pod, audience, false)
		check(t, h, provider.PathInstance, request(pod, "k8s."+nsDomain, "web", token), http.StatusOK)
		check(t, h, provider.PathInstance, request(pod, nsDomain, "web", token), http.StatusForbidden,
			`maps to domain "k8s.`+nsDomain+`", not "`+nsDomain+`"`, ns+"/default", `"k8s.{namespace}"`)
	})
	t.Run("profile annotation", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "api", serviceAccount: "sports.api", ip: "10.3.0.2",
			annotations: map[string]string{webhook.AnnotationProfile: builtin.Name}})
		token := mintToken(t, pod, audience, false)
		check(t, h, provider.PathInstance, request(pod, "sports", "api", token), http.StatusOK)
		check(t, h, provider.PathInstance, request(pod, "k8s."+nsDomain, "sports.api", token), http.StatusBadRequest, "service: ")
		check(t, h, provider.PathInstance, request(pod, "k8s."+nsDomain, "api", token), http.StatusForbidden,
			"domain: ", injectorNS+"/"+builtin.Name)
	})
	t.Run("identity annotations the policy does not allow", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "custom", serviceAccount: "web", ip: "10.3.0.3",
			annotations: map[string]string{webhook.AnnotationDomain: "media.video", webhook.AnnotationService: "encoder"}})
		token := mintToken(t, pod, audience, false)
		for _, req := range []provider.InstanceConfirmation{
			request(pod, "media.video", "encoder", token), request(pod, "k8s."+nsDomain, "web", token),
		} {
			check(t, h, provider.PathInstance, req, http.StatusForbidden,
				`policy: identity policy of SidecarProfile `+ns+`/default: namespace "`+ns+`" may not be media.video.encoder (annotation athenz.io/domain "media.video", annotation athenz.io/service "encoder")`)
		}
	})
	t.Run("no profile", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "lost", serviceAccount: "web", ip: "10.3.0.4",
			annotations: map[string]string{webhook.AnnotationProfile: "missing"}})
		check(t, h, provider.PathInstance, request(pod, "k8s."+nsDomain, "web", mintToken(t, pod, audience, false)), http.StatusForbidden,
			"profile: no SidecarProfile for this Pod", `"`+ns+`/missing"`, `"`+injectorNS+`/missing"`)
	})
	t.Run("profile not in copper-argos mode", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "keyed", serviceAccount: "web", ip: "10.3.0.5",
			annotations: map[string]string{webhook.AnnotationProfile: keyFile.Name}})
		check(t, h, provider.PathInstance, request(pod, "k8s."+nsDomain, "web", mintToken(t, pod, audience, false)), http.StatusForbidden,
			"profile: SidecarProfile "+ns+"/key-file is in key-file mode")
	})
	t.Run("profile names another provider", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "elsewhere", serviceAccount: "web", ip: "10.3.0.6",
			annotations: map[string]string{webhook.AnnotationProfile: otherProvider.Name}})
		check(t, h, provider.PathInstance, request(pod, nsDomain, "web", mintToken(t, pod, audience, false)), http.StatusForbidden,
			`provider: SidecarProfile `+ns+`/other-provider of pod `+ns+`/elsewhere names provider "sys.auth.other"`)
	})
}

func TestConfirmSystemNamespaces(t *testing.T) {
	h := newHandler(t, nil, nil)
	for _, ns := range []string{"kube-system", injectorNS} {
		pod := newPod(t, podSpec{namespace: ns, name: "sys-" + uniqueNamespace("pod"), serviceAccount: "web", ip: "10.6.0.1"})
		check(t, h, provider.PathInstance, request(pod, tokens.NamespaceToDomain(ns), "web", mintToken(t, pod, audience, false)),
			http.StatusForbidden, "namespace: pods in namespace "+ns+" get no identity")
	}
}

// TestPodCache: the cache keeps of a Pod only what the checks read (issue
// 14, defect 6: it kept every label and annotation of every Pod of the
// cluster, kubectl's last-applied-configuration included).
func TestPodCache(t *testing.T) {
	pod := newPod(t, podSpec{namespace: uniqueNamespace("trim"), name: "web", serviceAccount: "web", ip: "10.7.0.1",
		annotations: map[string]string{
			webhook.AnnotationDomain:                           "media",
			"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
		},
		labels: map[string]string{webhook.LabelRevision: "canary", "app": "web", "pod-template-hash": "7d4b9c6f5"}})
	var cached corev1.Pod
	if err := cp.reader.Get(t.Context(), client.ObjectKeyFromObject(pod), &cached); err != nil {
		t.Fatal(err)
	}
	if len(cached.Spec.Containers) != 0 || cached.UID != pod.UID || cached.Spec.ServiceAccountName != "web" ||
		cached.Status.PodIP != "10.7.0.1" || len(cached.Status.PodIPs) != 1 || cached.Annotations[webhook.AnnotationDomain] != "media" ||
		cached.Labels[webhook.LabelRevision] != "canary" {
		t.Errorf("cached pod %+v, want no containers and the uid, service account, IPs and athenz.io/ annotations and labels kept", cached)
	}
	if len(cached.Annotations) != 1 || len(cached.Labels) != 1 || len(cached.OwnerReferences) != 0 || len(cached.ManagedFields) != 0 {
		t.Errorf("cached pod keeps annotations %d, labels %v, owners %v, managed fields %d; want only the athenz.io/ ones and nothing else",
			len(cached.Annotations), cached.Labels, cached.OwnerReferences, len(cached.ManagedFields))
	}
	if err := cp.reader.Get(t.Context(), client.ObjectKey{Namespace: pod.Namespace, Name: "none"}, &cached); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a Pod that does not exist = %v, want NotFound", err)
	}
}

// missingPods is a cache that has not seen any Pod yet.
type missingPods struct{ client.Reader }

func (m missingPods) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Pod); ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, key.Name)
	}
	return m.Reader.Get(ctx, key, obj, opts...)
}

func TestConfirmCacheMiss(t *testing.T) {
	ns := uniqueNamespace("fresh")
	pod := newPod(t, podSpec{namespace: ns, name: "new", serviceAccount: "web", ip: "10.4.0.1"})
	req := request(pod, tokens.NamespaceToDomain(ns), "web", mintToken(t, pod, audience, false))

	live := newHandler(t, nil, func(o *provider.Options) { o.Reader = missingPods{cp.reader} })
	check(t, live, provider.PathInstance, req, http.StatusOK)

	cacheOnly := newHandler(t, nil, func(o *provider.Options) { o.Reader, o.LiveReader = missingPods{cp.reader}, nil })
	check(t, cacheOnly, provider.PathInstance, req, http.StatusForbidden, "pod deleted: ", "does not exist")
}

func TestMalformed(t *testing.T) {
	h := newHandler(t, nil, nil)
	valid := `{"provider":"sys.auth.k8s","domain":"team","service":"web","attestationData":"a.b.c"}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		msg    string
	}{
		{"not JSON", http.MethodPost, provider.PathInstance, "{", http.StatusBadRequest, "not an InstanceConfirmation"},
		{"not an object", http.MethodPost, provider.PathInstance, `["x"]`, http.StatusBadRequest, "not an InstanceConfirmation"},
		{"no provider", http.MethodPost, provider.PathInstance, `{"domain":"team","service":"web","attestationData":"a.b.c"}`, http.StatusBadRequest, "provider: missing"},
		{"no domain", http.MethodPost, provider.PathInstance, `{"provider":"p.k8s","service":"web","attestationData":"a.b.c"}`, http.StatusBadRequest, "domain: missing"},
		{"no service", http.MethodPost, provider.PathRefresh, `{"provider":"p.k8s","domain":"team","attestationData":"a.b.c"}`, http.StatusBadRequest, "service: missing"},
		{"no attestation data", http.MethodPost, provider.PathInstance, `{"provider":"p.k8s","domain":"team","service":"web"}`, http.StatusBadRequest, "attestationData: missing"},
		{"bad domain", http.MethodPost, provider.PathInstance, `{"provider":"p.k8s","domain":"team..x","service":"web","attestationData":"a.b.c"}`, http.StatusBadRequest, "domain: "},
		{"bad service", http.MethodPost, provider.PathInstance, `{"provider":"p.k8s","domain":"team","service":"w/b","attestationData":"a.b.c"}`, http.StatusBadRequest, "service: "},
		{"attestation not a JWT", http.MethodPost, provider.PathInstance, strings.Replace(valid, "a.b.c", "secret", 1), http.StatusBadRequest, "attestationData: not a service account token"},
		{"identityToken empty", http.MethodPost, provider.PathInstance, strings.Replace(valid, `"a.b.c"`, `"{\"identityToken\":\"\"}"`, 1), http.StatusBadRequest, "has no token"},
		{"identityToken not JSON", http.MethodPost, provider.PathInstance, strings.Replace(valid, `"a.b.c"`, `"{nope"`, 1), http.StatusBadRequest, "attestationData: "},
		{"too large", http.MethodPost, provider.PathInstance, `{"provider":"` + strings.Repeat("p", provider.MaxBodyBytes) + `"}`, http.StatusBadRequest, "larger than 65536 bytes"},
		{"GET", http.MethodGet, provider.PathInstance, "", http.StatusMethodNotAllowed, "method GET not allowed"},
		{"PUT refresh", http.MethodPut, provider.PathRefresh, valid, http.StatusMethodNotAllowed, "use POST"},
		{"unknown path", http.MethodPost, "/instance/x", valid, http.StatusNotFound, "no provider endpoint /instance/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, strings.NewReader(tt.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			a := answer{rec.Code, rec.Body.Bytes()}
			if a.status != tt.status || !strings.Contains(a.message(), tt.msg) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, a.status, a.message(), tt.status, tt.msg)
			}
			if tt.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("%s %s: Allow %q, want POST", tt.method, tt.path, rec.Header().Get("Allow"))
			}
		})
	}
}

func TestNewHandler(t *testing.T) {
	full := provider.Options{Reader: cp.reader, TokenReviews: cp.cs.AuthenticationV1().TokenReviews(), Audience: audience, InjectorNamespace: injectorNS}
	tests := []struct {
		name string
		edit func(*provider.Options)
		want string
	}{
		{"no reader", func(o *provider.Options) { o.Reader = nil }, "Options.Reader is required"},
		{"no token reviews", func(o *provider.Options) { o.TokenReviews = nil }, "Options.TokenReviews is required"},
		{"no audience", func(o *provider.Options) { o.Audience = "" }, "--provider-audience"},
		{"bad provider", func(o *provider.Options) { o.Provider = "sys..k8s" }, "--provider-name"},
		{"no injector namespace", func(o *provider.Options) { o.InjectorNamespace = "" }, "Options.InjectorNamespace is required"},
		{"negative refusal rate", func(o *provider.Options) { o.RefusalRate = -1 }, "RefusalRate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := full
			tt.edit(&o)
			if _, err := provider.NewHandler(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewHandler: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := provider.NewHandler(full); err != nil {
		t.Errorf("NewHandler with the required options: %v", err)
	}
}

// TestPodCacheOnEveryReplica: the cache runs on every replica, not only on
// the leader, since every replica serves the callback (a replica that is
// not the leader never became ready before it said so).
func TestPodCacheOnEveryReplica(t *testing.T) {
	var r manager.LeaderElectionRunnable = provider.NewPodCache(cp.cs)
	if r.NeedLeaderElection() {
		t.Errorf("PodCache.NeedLeaderElection() = true: a replica that is not the leader would never cache Pods")
	}
}
