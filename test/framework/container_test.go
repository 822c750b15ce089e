package framework

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testPod is an injected Pod as the API server stores it (abridged).
func testPod() *corev1.Pod {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sports", Name: "web-1", UID: "uid-1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "blue"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			NodeName:           "local",
			InitContainers: []corev1.Container{{
				Name:  "athenz-sidecar",
				Image: "sidecar:1",
				Args:  []string{"--identity-dir=/var/run/athenz", "/etc/athenz/zts-ca/ca.pem", "--name=$(POD_NAME)", "$$(POD_NAME)"},
				Env: []corev1.EnvVar{
					{Name: "ATHENZ_ZTS_URL", Value: "https://zts.example.com:4443/zts/v1"},
					{Name: "ATHENZ_ZTS_CA_FILE", Value: "/etc/athenz/zts-ca/ca.pem"},
					{Name: "ATHENZ_SA_TOKEN_FILE", Value: "/var/run/secrets/athenz.io/serviceaccount/token"},
					{Name: "ATHENZ_IDENTITY_DIR", Value: "/var/run/athenz"},
					{Name: "ATHENZ_SOCKET", Value: "/var/run/athenz/sidecar.sock"},
					{Name: "ATHENZ_SIDECAR_URL", Value: "unix:///var/run/athenz/sidecar.sock"},
					{Name: "NEAR_MISS", Value: "/var/run/athenzX/file"},
					{Name: "ATHENZ_LISTEN", Value: "127.0.0.1:8081"},
					{Name: "ATHENZ_HEALTH_LISTEN", Value: ":8082"},
					{Name: "OTHER_LISTEN", Value: "0.0.0.0:9000"},
					{Name: "SELF_URL", Value: "http://localhost:8081/ntoken"},
					{Name: "REMOTE_URL", Value: "http://example.com:8081/"},
					{Name: "POD_NAME", ValueFrom: field("metadata.name")},
					{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
					{Name: "POD_UID", ValueFrom: field("metadata.uid")},
					{Name: "POD_IP", ValueFrom: field("status.podIP")},
					{Name: "SERVICE_ACCOUNT", ValueFrom: field("spec.serviceAccountName")},
					{Name: "APP_LABEL", ValueFrom: field("metadata.labels['app']")},
					{Name: "TEAM", ValueFrom: field("metadata.annotations['team']")},
					{Name: "GREETING", Value: "hello $(POD_NAME) in $(POD_NAMESPACE), $(UNKNOWN)"},
				},
				Ports: []corev1.ContainerPort{{Name: "athenz-health", ContainerPort: 8082}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "athenz-identity", MountPath: "/var/run/athenz"},
					{Name: "athenz-sa-token", MountPath: "/var/run/secrets/athenz.io/serviceaccount", ReadOnly: true},
					{Name: "athenz-zts-ca", MountPath: "/etc/athenz/zts-ca", ReadOnly: true},
				},
				StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8082)}}},
			}},
			Containers: []corev1.Container{{Name: "app", Image: "web:1"}},
		},
		Status: corev1.PodStatus{PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}},
	}
}

var testMapping = Mapping{
	Images: map[string]string{"sidecar:1": "/build/sidecar"},
	Volumes: map[string]string{
		"athenz-identity": "/tmp/x/identity",
		"athenz-sa-token": "/tmp/x/token",
		"athenz-zts-ca":   "/tmp/x/ca",
	},
	Ports: map[int32]string{8081: "127.0.0.1:41001", 8082: "127.0.0.1:41002"},
	Dir:   "/tmp/x",
}

func TestResolveContainer(t *testing.T) {
	cmd, err := ResolveContainer(testPod(), "athenz-sidecar", testMapping)
	if err != nil {
		t.Fatalf("ResolveContainer: %v", err)
	}
	if cmd.Path != "/build/sidecar" || cmd.Dir != "/tmp/x" {
		t.Errorf("path %q dir %q, want /build/sidecar and /tmp/x", cmd.Path, cmd.Dir)
	}
	wantArgs := []string{"--identity-dir=/tmp/x/identity", "/tmp/x/ca/ca.pem", "--name=web-1", "$(POD_NAME)"}
	if !slices.Equal(cmd.Args, wantArgs) {
		t.Errorf("args = %q, want %q", cmd.Args, wantArgs)
	}
	for _, tc := range []struct {
		name, want string
	}{
		{"ATHENZ_ZTS_URL", "https://zts.example.com:4443/zts/v1"},
		{"ATHENZ_ZTS_CA_FILE", "/tmp/x/ca/ca.pem"},
		{"ATHENZ_SA_TOKEN_FILE", "/tmp/x/token/token"},
		{"ATHENZ_IDENTITY_DIR", "/tmp/x/identity"},
		{"ATHENZ_SOCKET", "/tmp/x/identity/sidecar.sock"},
		{"ATHENZ_SIDECAR_URL", "unix:///tmp/x/identity/sidecar.sock"},
		{"NEAR_MISS", "/var/run/athenzX/file"},
		{"ATHENZ_LISTEN", "127.0.0.1:41001"},
		{"ATHENZ_HEALTH_LISTEN", "127.0.0.1:41002"},
		{"OTHER_LISTEN", "0.0.0.0:9000"},
		{"SELF_URL", "http://127.0.0.1:41001/ntoken"},
		{"REMOTE_URL", "http://example.com:8081/"},
		{"POD_NAME", "web-1"},
		{"POD_NAMESPACE", "sports"},
		{"POD_UID", "uid-1"},
		{"POD_IP", "127.0.0.1"},
		{"SERVICE_ACCOUNT", "web"},
		{"APP_LABEL", "web"},
		{"TEAM", "blue"},
		{"GREETING", "hello web-1 in sports, $(UNKNOWN)"},
	} {
		if got, ok := cmd.Lookup(tc.name); !ok || got != tc.want {
			t.Errorf("env %s = %q (set %v), want %q", tc.name, got, ok, tc.want)
		}
	}
	if len(cmd.Env) != len(testPod().Spec.InitContainers[0].Env) {
		t.Errorf("env has %d entries, want exactly the container's %d: %q", len(cmd.Env), len(testPod().Spec.InitContainers[0].Env), cmd.Env)
	}
	var rewritten []string
	for _, r := range cmd.Rewrites {
		rewritten = append(rewritten, r.What)
	}
	wantRewritten := []string{"env ATHENZ_ZTS_CA_FILE", "env ATHENZ_SA_TOKEN_FILE", "env ATHENZ_IDENTITY_DIR", "env ATHENZ_SOCKET",
		"env ATHENZ_SIDECAR_URL", "env ATHENZ_LISTEN", "env ATHENZ_HEALTH_LISTEN", "env SELF_URL", "arg 0", "arg 1"}
	if !slices.Equal(rewritten, wantRewritten) {
		t.Errorf("rewrites = %q, want %q", rewritten, wantRewritten)
	}
}

// TestResolveContainerNestedMounts: a mount inside another mount wins for
// its paths, and a mount with a subPath maps to that part of the volume.
func TestResolveContainerNestedMounts(t *testing.T) {
	pod := testPod()
	c := &pod.Spec.InitContainers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "athenz-zts-ca", MountPath: "/var/run/athenz/ca", SubPath: "bundle"})
	c.Env = []corev1.EnvVar{
		{Name: "INNER", Value: "/var/run/athenz/ca/ca.pem"},
		{Name: "OUTER", Value: "/var/run/athenz/service.cert.pem"},
	}
	c.Args = nil
	cmd, err := ResolveContainer(pod, "athenz-sidecar", testMapping)
	if err != nil {
		t.Fatalf("ResolveContainer: %v", err)
	}
	for name, want := range map[string]string{"INNER": "/tmp/x/ca/bundle/ca.pem", "OUTER": "/tmp/x/identity/service.cert.pem"} {
		if got, _ := cmd.Lookup(name); got != want {
			t.Errorf("env %s = %q, want %q", name, got, want)
		}
	}
}

func TestResolveContainerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod, m *Mapping)
		want   string
	}{
		{"unknown container", func(p *corev1.Pod, m *Mapping) { p.Spec.InitContainers[0].Name = "other" }, `no container "athenz-sidecar"`},
		{"image without executable", func(p *corev1.Pod, m *Mapping) { p.Spec.InitContainers[0].Image = "sidecar:2" }, `image "sidecar:2" has no local executable`},
		{"command", func(p *corev1.Pod, m *Mapping) { p.Spec.InitContainers[0].Command = []string{"/bin/sh"} }, "sets command"},
		{"envFrom", func(p *corev1.Pod, m *Mapping) {
			p.Spec.InitContainers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}
		}, "envFrom"},
		{"secret env", func(p *corev1.Pod, m *Mapping) {
			p.Spec.InitContainers[0].Env = []corev1.EnvVar{{Name: "KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{}}}}
		}, "env KEY: only value and fieldRef"},
		{"unknown fieldRef", func(p *corev1.Pod, m *Mapping) {
			p.Spec.InitContainers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.hostname"}}}}
		}, `env X: fieldRef "spec.hostname"`},
		{"volume without directory", func(p *corev1.Pod, m *Mapping) { delete(m.Volumes, "athenz-zts-ca") }, `volume "athenz-zts-ca" at /etc/athenz/zts-ca`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod()
			m := testMapping
			m.Volumes = map[string]string{}
			for k, v := range testMapping.Volumes {
				m.Volumes[k] = v
			}
			tc.change(pod, &m)
			_, err := ResolveContainer(pod, "athenz-sidecar", m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ResolveContainer = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "b$(A)"}
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "a"},
		{"x$(A)y$(B)z", "xayb$(A)z"},
		{"$(C)", "$(C)"},
		{"$$(A)", "$(A)"},
		{"$$", "$"},
		{"cost $5", "cost $5"},
		{"$(A", "$(A"},
		{"end$", "end$"},
	} {
		if got := expand(tc.in, vars); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProbeURL(t *testing.T) {
	c := &testPod().Spec.InitContainers[0]
	for _, tc := range []struct {
		name    string
		port    intstr.IntOrString
		want    string
		wantErr string
	}{
		{"number", intstr.FromInt32(8082), "http://127.0.0.1:41002/readyz", ""},
		{"name", intstr.FromString("athenz-health"), "http://127.0.0.1:41002/readyz", ""},
		{"unmapped", intstr.FromInt32(9999), "", "not mapped"},
		{"unknown name", intstr.FromString("nope"), "", "not mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: tc.port}}}
			got, err := ProbeURL(c, p, testMapping.Ports)
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("ProbeURL = %q, %v; want %q, error containing %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestListenPorts(t *testing.T) {
	got := ListenPorts(&testPod().Spec.InitContainers[0])
	want := []int32{8081, 8082, 9000}
	if !slices.Equal(got, want) {
		t.Errorf("ListenPorts = %v, want %v", got, want)
	}
}
