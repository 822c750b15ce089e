package chart_test

import (
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// Names of the default release (release and namespace "athenz-injector").
const (
	name        = "athenz-injector"
	namespace   = "athenz-injector"
	serviceName = "athenz-injector-webhook"
	certSecret  = "athenz-injector-webhook-tls"
)

// testCA is a PEM certificate for certs.manual.caBundle.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIBATAKBggqhkjOPQQDAjAbMRkwFwYDVQQDExBhdGhlbnotaW5q
-----END CERTIFICATE-----
`

func TestLint(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
	}{
		{name: "defaults"},
		{name: "cert-manager, provider, profile", values: map[string]any{
			"certs":    map[string]any{"mode": "cert-manager"},
			"provider": map[string]any{"enabled": true, "clientCA": map[string]any{"secret": map[string]any{"name": "zts-ca", "key": "ca.pem"}}},
			"profile":  validProfile(),
		}},
		{name: "network policy, provider for development", values: map[string]any{
			"provider":      map[string]any{"enabled": true, "insecureAllowAnyClient": true},
			"networkPolicy": map[string]any{"enabled": true, "providerFrom": []any{map[string]any{"ipBlock": map[string]any{"cidr": "192.0.2.0/24"}}}},
		}},
		{name: "manual, webhook.url", values: map[string]any{
			"certs":    map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "tls", "caBundle": testCA}},
			"webhook":  map[string]any{"url": "https://127.0.0.1:9443"},
			"injector": map[string]any{"enabled": false},
		}},
	} {
		args := []string{"lint", "--strict", h.chart}
		if tc.values != nil {
			args = append(args, "-f", valuesFile(t, tc.values))
		}
		out, err := h.run(args...)
		if err != nil {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
			continue
		}
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("%s: helm lint --strict reports problems:\n%s", tc.name, out)
		}
	}
}

func validProfile() map[string]any {
	return map[string]any{
		"create": true,
		"zts":    map[string]any{"url": "https://zts.example.com:4443/zts/v1", "ca": map[string]any{"configMap": map[string]any{"name": "athenz-zts-ca", "key": "ca.pem"}}},
		"identity": map[string]any{
			"provider":  "sys.auth.k8s",
			"dnsSuffix": "athenz.example.com",
		},
		"prefetch": []string{"sports:role.reader"},
		"sidecar":  map[string]any{"ports": map[string]any{"api": 9081}},
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, m manifests)
	}{
		{
			name:  "defaults: auto certificates",
			check: checkDefaults,
		},
		{
			name: "cert-manager with its own CA",
			values: map[string]any{"certs": map[string]any{
				"mode": "cert-manager", "extraDNSNames": []string{"provider.example.com", "10.0.0.1"},
			}},
			check: func(t *testing.T, m manifests) {
				checkNoAutoCerts(t, m)
				for _, o := range []struct{ kind, name string }{
					{"Issuer", name + "-selfsigned"}, {"Certificate", name + "-ca"}, {"Issuer", name + "-ca"},
				} {
					if m.find(o.kind, o.name) == nil {
						t.Errorf("no %s %s; rendered: %s", o.kind, o.name, m)
					}
				}
				cert := m.find("Certificate", name+"-webhook")
				if cert == nil {
					t.Fatalf("no serving Certificate; rendered: %s", m)
				}
				if got := nested(cert, "spec", "secretName"); got != certSecret {
					t.Errorf("Certificate secretName = %v, want %s", got, certSecret)
				}
				if got := nested(cert, "spec", "issuerRef", "name"); got != name+"-ca" {
					t.Errorf("Certificate issuerRef.name = %v, want %s-ca", got, name)
				}
				dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
				if !slices.Contains(dns, serviceName+"."+namespace+".svc") || !slices.Contains(dns, "provider.example.com") {
					t.Errorf("Certificate dnsNames = %v, want %s.%s.svc and provider.example.com among them", dns, serviceName, namespace)
				}
				if ips, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "ipAddresses"); !slices.Equal(ips, []string{"10.0.0.1"}) {
					t.Errorf("Certificate ipAddresses = %v, want [10.0.0.1]", ips)
				}
				mwc := webhookConfig(t, m)
				if got, want := mwc.Annotations["cert-manager.io/inject-ca-from"], namespace+"/"+name+"-webhook"; got != want {
					t.Errorf("cert-manager.io/inject-ca-from = %q, want %q", got, want)
				}
				if got := tlsVolume(t, m).Secret; got == nil || got.SecretName != certSecret {
					t.Errorf("tls volume = %+v, want Secret %s", got, certSecret)
				}
			},
		},
		{
			name: "cert-manager with an existing issuer",
			values: map[string]any{"certs": map[string]any{"mode": "cert-manager", "certManager": map[string]any{
				"issuerRef": map[string]any{"name": "corp-ca", "kind": "ClusterIssuer"},
			}}},
			check: func(t *testing.T, m manifests) {
				if got := m.all("Issuer"); len(got) != 0 {
					t.Errorf("rendered %d Issuers with certs.certManager.issuerRef set, want none", len(got))
				}
				cert := m.find("Certificate", name+"-webhook")
				if cert == nil {
					t.Fatalf("no serving Certificate; rendered: %s", m)
				}
				if n, k := nested(cert, "spec", "issuerRef", "name"), nested(cert, "spec", "issuerRef", "kind"); n != "corp-ca" || k != "ClusterIssuer" {
					t.Errorf("issuerRef = %v/%v, want ClusterIssuer/corp-ca", k, n)
				}
			},
		},
		{
			name: "manual certificates",
			values: map[string]any{"certs": map[string]any{"mode": "manual", "manual": map[string]any{
				"secretName": "my-webhook-tls", "caBundle": testCA,
			}}},
			check: func(t *testing.T, m manifests) {
				checkNoAutoCerts(t, m)
				if got := m.all("Certificate"); len(got) != 0 {
					t.Errorf("rendered %d Certificates in manual mode", len(got))
				}
				for _, wh := range webhookConfig(t, m).Webhooks {
					if string(wh.ClientConfig.CABundle) != testCA {
						t.Errorf("%s: caBundle = %q, want the PEM of certs.manual.caBundle", wh.Name, wh.ClientConfig.CABundle)
					}
				}
				if got := tlsVolume(t, m).Secret; got == nil || got.SecretName != "my-webhook-tls" {
					t.Errorf("tls volume = %+v, want Secret my-webhook-tls", got)
				}
			},
		},
		{
			name: "webhook.url with the injector outside the cluster",
			values: map[string]any{
				"webhook":  map[string]any{"url": "https://127.0.0.1:9443/"},
				"injector": map[string]any{"enabled": false},
			},
			check: func(t *testing.T, m manifests) {
				for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "Pod"} {
					if got := m.all(kind); len(got) != 0 {
						t.Errorf("rendered a %s with injector.enabled=false", kind)
					}
				}
				want := map[string]string{
					"pods.injector.athenz.io":           "https://127.0.0.1:9443/mutate-pods",
					"namespace-pods.injector.athenz.io": "https://127.0.0.1:9443/mutate-pods",
					"workloads.injector.athenz.io":      "https://127.0.0.1:9443/mutate-workloads",
				}
				for _, wh := range webhookConfig(t, m).Webhooks {
					if wh.ClientConfig.Service != nil || wh.ClientConfig.URL == nil || *wh.ClientConfig.URL != want[wh.Name] {
						t.Errorf("%s: clientConfig = %+v, want url %s and no service", wh.Name, wh.ClientConfig, want[wh.Name])
					}
				}
				// RBAC stays: an injector outside the cluster may run as
				// the chart's ServiceAccount.
				if m.find("ClusterRole", name) == nil || m.find("ServiceAccount", name) == nil {
					t.Errorf("no ServiceAccount or ClusterRole with injector.enabled=false; rendered: %s", m)
				}
			},
		},
		{
			name: "provider callback",
			values: map[string]any{
				"provider": map[string]any{
					"enabled": true, "name": "sys.auth.k8s", "certSecret": "provider-tls",
					"clientCA": map[string]any{"configMap": map[string]any{"name": "zts-ca", "key": "ca.pem"}},
					"service":  map[string]any{"type": "LoadBalancer"},
				},
				"certs": map[string]any{"extraDNSNames": []string{"provider.example.com", "10.0.0.1"}},
			},
			check: func(t *testing.T, m manifests) {
				args := injectorArgs(t, m)
				for _, want := range []string{
					"--provider-bind-address=:9444", "--provider-audience=athenz", "--provider-name=sys.auth.k8s",
					"--provider-client-ca-file=/etc/athenz-injector/provider-ca/ca.pem",
					"--provider-cert-dir=/etc/athenz-injector/provider-tls",
					"--cert-dns-names=provider.example.com,10.0.0.1",
				} {
					if !slices.Contains(args, want) {
						t.Errorf("args %q lack %s", args, want)
					}
				}
				pod := deployment(t, m).Spec.Template.Spec
				if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
					return v.Name == "provider-ca" && v.ConfigMap != nil && v.ConfigMap.Name == "zts-ca"
				}) || !slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(vm corev1.VolumeMount) bool {
					return vm.Name == "provider-ca" && vm.MountPath == "/etc/athenz-injector/provider-ca"
				}) {
					t.Errorf("ConfigMap zts-ca is not mounted at /etc/athenz-injector/provider-ca: volumes %+v", pod.Volumes)
				}
				if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
					return v.Name == "provider-tls" && v.Secret != nil && v.Secret.SecretName == "provider-tls"
				}) || !slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(vm corev1.VolumeMount) bool {
					return vm.Name == "provider-tls" && vm.MountPath == "/etc/athenz-injector/provider-tls"
				}) {
					t.Errorf("Secret provider-tls is not mounted at /etc/athenz-injector/provider-tls: volumes %+v", pod.Volumes)
				}
				// A Service of its own: exposing the callback to ZTS must
				// not expose the admission webhook.
				var svc corev1.Service
				m.get(t, "Service", name+"-provider", &svc)
				if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 ||
					svc.Spec.Ports[0].Port != 4443 || svc.Spec.Ports[0].TargetPort.StrVal != "provider" {
					t.Errorf("provider Service = %+v, want LoadBalancer 4443 -> provider", svc.Spec)
				}
				var webhookSvc corev1.Service
				m.get(t, "Service", serviceName, &webhookSvc)
				if len(webhookSvc.Spec.Ports) != 1 {
					t.Errorf("webhook Service ports = %+v, want only the webhook's", webhookSvc.Spec.Ports)
				}
				var role rbacv1.ClusterRole
				m.get(t, "ClusterRole", name+"-provider", &role)
				for _, want := range []struct{ group, resource, verb string }{
					{"authentication.k8s.io", "tokenreviews", "create"},
					{"", "pods", "list"}, {"", "pods", "watch"},
				} {
					if !grants(role.Rules, want.group, want.resource, want.verb) {
						t.Errorf("ClusterRole %s-provider does not grant %s on %s.%s", name, want.verb, want.resource, want.group)
					}
				}
				if grants(role.Rules, "", "pods", "get") {
					t.Errorf("ClusterRole %s-provider grants get on pods, which the callback never does", name)
				}
			},
		},
		{
			name: "ServiceMonitor, one replica, priority class, failure policy",
			values: map[string]any{
				"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
				"injector": map[string]any{
					"replicaCount": 1, "priorityClassName": "system-cluster-critical",
				},
				"webhook": map[string]any{"failurePolicy": "Ignore", "timeoutSeconds": 10, "excludeNamespaces": []string{"monitoring"}},
			},
			check: func(t *testing.T, m manifests) {
				sm := m.find("ServiceMonitor", name)
				if sm == nil {
					t.Fatalf("no ServiceMonitor; rendered: %s", m)
				}
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				var selected []string
				for _, svc := range m.all("Service") {
					if matches(sel, svc.GetLabels()) {
						selected = append(selected, svc.GetName())
					}
				}
				if !slices.Equal(selected, []string{name + "-metrics"}) {
					t.Errorf("ServiceMonitor selects Services %v, want only %s-metrics", selected, name)
				}
				if m.find("PodDisruptionBudget", name) != nil {
					t.Errorf("rendered a PodDisruptionBudget for one replica: it would block node drains")
				}
				dep := deployment(t, m)
				if dep.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
					t.Errorf("priorityClassName = %q", dep.Spec.Template.Spec.PriorityClassName)
				}
				for _, wh := range webhookConfig(t, m).Webhooks {
					if *wh.FailurePolicy != admissionregv1.Ignore || *wh.TimeoutSeconds != 10 {
						t.Errorf("%s: failurePolicy %v, timeout %v, want Ignore, 10", wh.Name, *wh.FailurePolicy, *wh.TimeoutSeconds)
					}
					if got := wh.NamespaceSelector.MatchExpressions[0].Values; !slices.Equal(got, []string{"kube-system", namespace, "monitoring"}) {
						t.Errorf("%s: excluded namespaces %v", wh.Name, got)
					}
				}
			},
		},
		{
			name: "network policy",
			values: map[string]any{
				"provider": map[string]any{"enabled": true, "clientCA": map[string]any{"configMap": map[string]any{"name": "zts-ca", "key": "ca.pem"}}},
				"networkPolicy": map[string]any{
					"enabled":      true,
					"webhookFrom":  []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.0.0.0/24"}}},
					"providerFrom": []any{map[string]any{"ipBlock": map[string]any{"cidr": "192.0.2.10/32"}}},
					"extraIngress": []any{map[string]any{"ports": []any{map[string]any{"port": 8080}}}},
				},
			},
			check: func(t *testing.T, m manifests) {
				var np networkingv1.NetworkPolicy
				m.get(t, "NetworkPolicy", name, &np)
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) ||
					np.Spec.PodSelector.MatchLabels["app.kubernetes.io/instance"] != name {
					t.Errorf("NetworkPolicy %+v, want Ingress for the injector's Pods", np.Spec)
				}
				type rule struct {
					port int
					from string
				}
				var got []rule
				for _, r := range np.Spec.Ingress {
					from := ""
					if len(r.From) == 1 && r.From[0].IPBlock != nil {
						from = r.From[0].IPBlock.CIDR
					}
					for _, p := range r.Ports {
						got = append(got, rule{p.Port.IntValue(), from})
					}
				}
				want := []rule{{9443, "10.0.0.0/24"}, {9444, "192.0.2.10/32"}, {8080, ""}}
				if !slices.Equal(got, want) {
					t.Errorf("ingress (port, from) = %v, want %v: the webhook, the callback and extraIngress only", got, want)
				}
			},
		},
		{
			name:   "metrics off",
			values: map[string]any{"metrics": map[string]any{"enabled": false}},
			check: func(t *testing.T, m manifests) {
				if !slices.Contains(injectorArgs(t, m), "--metrics-bind-address=0") {
					t.Errorf("args %q lack --metrics-bind-address=0", injectorArgs(t, m))
				}
				if m.find("Service", name+"-metrics") != nil || len(m.all("ServiceMonitor")) != 0 {
					t.Errorf("metrics Service or ServiceMonitor rendered with metrics.enabled=false")
				}
			},
		},
		{
			name:   "default SidecarProfile",
			values: map[string]any{"profile": validProfile()},
			check: func(t *testing.T, m manifests) {
				var p v1alpha1.SidecarProfile
				m.get(t, "SidecarProfile", "default", &p)
				if p.Namespace != namespace {
					t.Errorf("profile namespace = %q, want %q", p.Namespace, namespace)
				}
				s := p.Spec
				if s.ZTS.URL != "https://zts.example.com:4443/zts/v1" || s.ZTS.CA == nil || s.ZTS.CA.ConfigMap == nil || s.ZTS.CA.ConfigMap.Name != "athenz-zts-ca" {
					t.Errorf("zts = %+v", s.ZTS)
				}
				if s.Identity.Mode != v1alpha1.IdentityCopperArgos || s.Identity.Provider != "sys.auth.k8s" || s.Identity.DNSSuffix != "athenz.example.com" {
					t.Errorf("identity = %+v", s.Identity)
				}
				if s.Identity.KeyFile != nil || s.Identity.Files != nil || s.Identity.TokenAudience != "" {
					t.Errorf("identity = %+v: empty values were not left out", s.Identity)
				}
				if !slices.Equal(s.Prefetch, []string{"sports:role.reader"}) || s.Sidecar.Ports.API != 9081 {
					t.Errorf("prefetch %v, sidecar %+v", s.Prefetch, s.Sidecar)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, h.template(t, tc.values))
		})
	}
}

func checkDefaults(t *testing.T, m manifests) {
	dep := deployment(t, m)
	if got := *dep.Spec.Replicas; got != 2 {
		t.Errorf("replicas = %d, want 2", got)
	}
	pod := dep.Spec.Template.Spec
	anti := pod.Affinity.PodAntiAffinity
	if anti == nil || len(anti.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity = %+v, want preferred anti-affinity on kubernetes.io/hostname", pod.Affinity)
	}
	if pod.PriorityClassName != "" {
		t.Errorf("priorityClassName = %q, want none by default", pod.PriorityClassName)
	}
	c := pod.Containers[0]
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.StrVal != "health" {
		t.Errorf("livenessProbe = %+v, want /healthz on health", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.StrVal != "health" {
		t.Errorf("readinessProbe = %+v, want /readyz on health", c.ReadinessProbe)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v", sc)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot", psc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want a CPU request and a memory limit", c.Resources)
	}
	args := c.Args
	for _, want := range []string{
		"--webhook-port=9443", "--cert-dir=/etc/athenz-injector/tls", "--health-probe-bind-address=:8081",
		"--metrics-bind-address=:8080", "--namespace=" + namespace, "--leader-elect",
		"--sidecar-image=ghcr.io/athenz-injector/athenz-sidecar:0.1.0",
		"--cert-mode=auto", "--cert-secret=" + certSecret, "--webhook-config-name=" + name, "--service-name=" + serviceName,
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if v := tlsVolume(t, m); v.EmptyDir == nil {
		t.Errorf("tls volume = %+v, want an emptyDir the injector writes to in auto mode", v)
	}

	var pdb policyv1.PodDisruptionBudget
	m.get(t, "PodDisruptionBudget", name, &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	var svc corev1.Service
	m.get(t, "Service", serviceName, &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.StrVal != "webhook" {
		t.Errorf("Service ports = %+v, want 443 -> webhook only", svc.Spec.Ports)
	}

	mwc := webhookConfig(t, m)
	if len(mwc.Annotations) != 0 {
		t.Errorf("webhook configuration annotations = %v, want none in auto mode", mwc.Annotations)
	}
	for _, wh := range mwc.Webhooks {
		if len(wh.ClientConfig.CABundle) != 0 {
			t.Errorf("%s: caBundle set in auto mode, where the injector patches it", wh.Name)
		}
	}
	var role rbacv1.Role
	m.get(t, "Role", name+"-certs", &role)
	for _, verb := range []string{"get", "create", "update"} {
		if !grants(role.Rules, "", "secrets", verb) {
			t.Errorf("Role %s-certs does not grant %s on secrets", name, verb)
		}
	}
	var cr rbacv1.ClusterRole
	m.get(t, "ClusterRole", name, &cr)
	for _, verb := range []string{"get", "patch"} {
		if !grants(cr.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", verb) {
			t.Errorf("ClusterRole %s does not grant %s on mutatingwebhookconfigurations", name, verb)
		}
	}
	// No wildcard anywhere: TestRBACLeastPrivilege checks every verb.
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, o := range m.all(kind) {
			var r rbacv1.ClusterRole
			m.get(t, kind, o.GetName(), &r)
			for _, rule := range r.Rules {
				if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
					t.Errorf("%s %s has a wildcard rule %+v", kind, o.GetName(), rule)
				}
			}
		}
	}
	for _, kind := range []string{"ServiceMonitor", "SidecarProfile", "Certificate", "Issuer", "NetworkPolicy"} {
		if got := m.all(kind); len(got) != 0 {
			t.Errorf("rendered a %s by default", kind)
		}
	}
	if m.find("ClusterRole", name+"-provider") != nil {
		t.Errorf("rendered the provider's ClusterRole by default")
	}
	test := m.find("Pod", name+"-test")
	if test == nil || test.GetAnnotations()["helm.sh/hook"] != "test" {
		t.Errorf("no helm test Pod %s-test with helm.sh/hook: test", name)
	}
}

// checkNoAutoCerts: outside auto mode the injector gets no certificate
// flags and no rights on Secrets or on its webhook configuration.
func checkNoAutoCerts(t *testing.T, m manifests) {
	t.Helper()
	args := injectorArgs(t, m)
	if !slices.Contains(args, "--cert-mode=external") {
		t.Errorf("args %q lack --cert-mode=external", args)
	}
	for _, arg := range args {
		if strings.HasPrefix(arg, "--cert-secret") || strings.HasPrefix(arg, "--cert-dns-names") {
			t.Errorf("arg %s outside auto mode", arg)
		}
	}
	if m.find("Role", name+"-certs") != nil {
		t.Errorf("Role %s-certs rendered outside auto mode", name)
	}
	var cr rbacv1.ClusterRole
	m.get(t, "ClusterRole", name, &cr)
	if grants(cr.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update") {
		t.Errorf("ClusterRole %s may update webhook configurations outside auto mode", name)
	}
	if v := tlsVolume(t, m); v.Secret == nil {
		t.Errorf("tls volume = %+v, want the Secret", v)
	}
}

func deployment(t *testing.T, m manifests) *appsv1.Deployment {
	t.Helper()
	var dep appsv1.Deployment
	m.get(t, "Deployment", name, &dep)
	return &dep
}

func injectorArgs(t *testing.T, m manifests) []string {
	t.Helper()
	return deployment(t, m).Spec.Template.Spec.Containers[0].Args
}

func tlsVolume(t *testing.T, m manifests) corev1.Volume {
	t.Helper()
	for _, v := range deployment(t, m).Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			return v
		}
	}
	t.Fatal("the Deployment has no tls volume")
	return corev1.Volume{}
}

func webhookConfig(t *testing.T, m manifests) *admissionregv1.MutatingWebhookConfiguration {
	t.Helper()
	var mwc admissionregv1.MutatingWebhookConfiguration
	m.get(t, "MutatingWebhookConfiguration", name, &mwc)
	if len(mwc.Webhooks) != 3 {
		t.Fatalf("%d webhooks, want 3", len(mwc.Webhooks))
	}
	return &mwc
}

func nested(o *unstructured.Unstructured, fields ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, fields...)
	return v
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// grants reports whether one of rules allows verb on resource in group.
// Resource names are ignored: the chart may narrow a rule to its own
// objects.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}
