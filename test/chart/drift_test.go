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
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config, err := parseManifests(string(data))
	if err != nil {
		t.Fatal(err)
	}
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
// config/rbac (role.yaml is generated from the injector's RBAC markers) is
// granted by the chart with everything turned on.
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

	chart := newHelm(t).template(t, map[string]any{"provider": map[string]any{"enabled": true}})
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
