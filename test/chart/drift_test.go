package chart_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// The chart repeats what config/ holds (generated CRDs, the webhook
// configuration, RBAC from the injector's markers). These tests fail when
// the two drift apart.

// TestCRDsMatchConfig: the chart's crds/ are byte for byte the generated
// CRDs of config/crd/bases.
func TestCRDsMatchConfig(t *testing.T) {
	t.Parallel()
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	configDir := filepath.Join(root, "config", "crd", "bases")
	chartDir := filepath.Join(root, chartPath, "crds")
	want, err := filepath.Glob(filepath.Join(configDir, "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in %s: %v", configDir, err)
	}
	got, err := filepath.Glob(filepath.Join(chartDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const fix = "copy them: cp config/crd/bases/*.yaml " + chartPath + "/crds/"
	if !slices.Equal(baseNames(got), baseNames(want)) {
		t.Fatalf("%s/crds has %v, config/crd/bases has %v; %s", chartPath, baseNames(got), baseNames(want), fix)
	}
	for _, path := range want {
		generated, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := os.ReadFile(filepath.Join(chartDir, filepath.Base(path)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(copied, generated) {
			t.Errorf("%s/crds/%s differs from config/crd/bases/%s; %s", chartPath, filepath.Base(path), filepath.Base(path), fix)
		}
	}
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	slices.Sort(out)
	return out
}

// TestWebhooksMatchConfig: with default values, as release
// "athenz-injector" in namespace "athenz-injector", the chart renders the
// webhooks of config/webhook/manifests.yaml exactly.
func TestWebhooksMatchConfig(t *testing.T) {
	t.Parallel()
	config := readConfig(t, "webhook/manifests.yaml")
	var want admissionregv1.MutatingWebhookConfiguration
	config.get(t, "MutatingWebhookConfiguration", name, &want)

	got := webhookConfig(t, newHelm(t).template(t, nil))
	if len(got.Webhooks) != len(want.Webhooks) {
		t.Fatalf("chart renders %d webhooks, config/webhook has %d", len(got.Webhooks), len(want.Webhooks))
	}
	for i := range want.Webhooks {
		if !reflect.DeepEqual(got.Webhooks[i], want.Webhooks[i]) {
			g, _ := json.MarshalIndent(got.Webhooks[i], "", "  ")
			w, _ := json.MarshalIndent(want.Webhooks[i], "", "  ")
			t.Errorf("webhook %d differs from config/webhook/manifests.yaml: update %s/templates/mutatingwebhookconfiguration.yaml\nchart:\n%s\nconfig:\n%s",
				i, chartPath, g, w)
		}
	}
}

// TestRBACCoversConfig: every rule of the Roles and ClusterRoles in
// config/rbac and config/rbac/provider (role.yaml is generated from the
// injector's RBAC markers) is granted by the chart with everything turned
// on. TestRBACLeastPrivilege shows the chart grants nothing more.
func TestRBACCoversConfig(t *testing.T) {
	t.Parallel()
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in config/rbac: %v", err)
	}
	provider, err := filepath.Glob(filepath.Join(root, "config", "rbac", "provider", "*.yaml"))
	if err != nil || len(provider) == 0 {
		t.Fatalf("no manifests in config/rbac/provider: %v", err)
	}
	files = append(files, provider...)
	var config manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseManifests(string(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		config = append(config, m...)
	}

	chart := newHelm(t).template(t, map[string]any{"provider": map[string]any{"enabled": true, "insecureAllowAnyClient": true}})
	var granted []rbacv1.PolicyRule
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, o := range chart.all(kind) {
			var r rbacv1.ClusterRole // a Role's rules decode the same way
			chart.get(t, kind, o.GetName(), &r)
			granted = append(granted, r.Rules...)
		}
	}
	checked := 0
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, o := range config.all(kind) {
			var r rbacv1.ClusterRole
			config.get(t, kind, o.GetName(), &r)
			for _, rule := range r.Rules {
				for _, g := range rule.APIGroups {
					for _, res := range rule.Resources {
						for _, verb := range rule.Verbs {
							checked++
							if !grants(granted, g, res, verb) {
								t.Errorf("config/rbac %s %s grants %s on %s (group %q); the chart does not: update %s/templates/rbac.yaml",
									kind, o.GetName(), verb, res, g, chartPath)
							}
						}
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no rules in config/rbac")
	}
}

// TestAdmissionPolicyMatchesConfig: where the API server serves
// ValidatingAdmissionPolicy, the chart renders the policy and binding of
// config/policy exactly (but for labels); where it does not, none.
func TestAdmissionPolicyMatchesConfig(t *testing.T) {
	t.Parallel()
	config := readConfig(t, "policy/validating_admission_policy.yaml")
	h := newHelm(t)
	if got := h.template(t, nil); len(got.all("ValidatingAdmissionPolicy"))+len(got.all("ValidatingAdmissionPolicyBinding")) != 0 {
		t.Errorf("rendered a ValidatingAdmissionPolicy without the API version being served")
	}
	chart := h.templateAs(t, name, namespace, nil, "--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		want := config.find(kind, name+"-identity-annotations")
		got := chart.find(kind, name+"-identity-annotations")
		if want == nil || got == nil {
			t.Fatalf("%s %s-identity-annotations: in config/policy %v, in the chart %v", kind, name, want != nil, got != nil)
		}
		if !reflect.DeepEqual(got.Object["spec"], want.Object["spec"]) {
			g, _ := json.MarshalIndent(got.Object["spec"], "", "  ")
			w, _ := json.MarshalIndent(want.Object["spec"], "", "  ")
			t.Errorf("%s differs from config/policy: update %s/templates/_helpers.tpl or config/policy\nchart:\n%s\nconfig:\n%s", kind, chartPath, g, w)
		}
	}
	off := h.templateAs(t, name, namespace, map[string]any{"admissionPolicy": map[string]any{"enabled": false}},
		"--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
	if len(off.all("ValidatingAdmissionPolicy")) != 0 {
		t.Errorf("rendered a ValidatingAdmissionPolicy with admissionPolicy.enabled=false")
	}
}
