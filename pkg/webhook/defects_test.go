package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The defects of issue 14, each as the property it broke. They failed on
// the code before the fixes (docs/design/2026-12-02-workload-fit.md).

// patchedPod injects the golden case name and returns the Pod as the API
// server stores it.
func patchedPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	c := loadCase(t, name)
	ops, err := Mutate(c.pod, c.nsLabels, c.profile, testSettings)
	if err != nil {
		t.Fatalf("Mutate(%s): %v", name, err)
	}
	raw, err := applyPatch(c.raw, ops)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := DecodePod(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

func envOf(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// Defect 1: every injected hostNetwork Pod bound the sidecar's health port
// on the node, so two such Pods of one profile could never share a node
// (and on schedulers before 1.33 landed there anyway and crash-looped).
// Now a hostNetwork Pod opens no port unless it names one, and two Pods
// that name different ports each get their own.
func TestHostNetworkOpensNoNodePort(t *testing.T) {
	pod := patchedPod(t, "host-network")
	sc := findContainer(pod, SidecarName)
	if len(sc.Ports) != 0 {
		t.Errorf("hostNetwork sidecar declares ports %+v, want none (a port is the node's)", sc.Ports)
	}
	if got := envOf(sc)["ATHENZ_HEALTH_LISTEN"]; got != listenOff {
		t.Errorf("hostNetwork sidecar ATHENZ_HEALTH_LISTEN = %q, want %q", got, listenOff)
	}
	for what, p := range map[string]*corev1.Probe{"readiness": sc.ReadinessProbe, "liveness": sc.LivenessProbe, "startup": sc.StartupProbe} {
		if p == nil || p.Exec == nil || p.HTTPGet != nil {
			t.Errorf("hostNetwork sidecar %s probe = %+v, want the exec probe (it asks the socket)", what, p)
		}
	}

	named := patchedPod(t, "host-network-ports")
	sc = findContainer(named, SidecarName)
	if len(sc.Ports) != 1 || sc.Ports[0].ContainerPort != 18082 || envOf(sc)["ATHENZ_HEALTH_LISTEN"] != ":18082" {
		t.Errorf("hostNetwork sidecar with %s=18082: ports %+v, ATHENZ_HEALTH_LISTEN %q; want 18082 on both",
			AnnotationHealthPort, sc.Ports, envOf(sc)["ATHENZ_HEALTH_LISTEN"])
	}
}

// Defect 3: Windows Pods were injected with the Linux sidecar and then
// refused by the API server with a message about seccomp or runAsUser (or,
// selected by node selector only, started a Linux image on Windows).
func TestWindowsPodNotInjected(t *testing.T) {
	c := loadCase(t, "windows")
	_, err := Mutate(c.pod, nil, c.profile, testSettings)
	d, ok := IsDenial(err)
	if !ok || !strings.Contains(d.Msg, "Windows") || !strings.Contains(d.Msg, AnnotationInject) {
		t.Errorf("Mutate(Windows Pod that opted in) = %v, want a denial that says Windows and names %s", err, AnnotationInject)
	}
	c = loadCase(t, "windows-namespace")
	ops, err := Mutate(c.pod, c.nsLabels, c.profile, testSettings)
	if err != nil || len(ops) != 0 {
		t.Errorf("Mutate(Windows Pod in an opted-in namespace) = %d operations, %v; want none, nil", len(ops), err)
	}
	if _, reason, _ := ShouldInject(c.pod, c.nsLabels, testSettings); reason != ReasonWindows {
		t.Errorf("ShouldInject reason %q, want %q", reason, ReasonWindows)
	}
}

// Defect 4: in files mode apps were told ATHENZ_CA_FILE=ca.cert.pem, which
// nothing wrote. Now every file an app is pointed at is one the sidecar is
// configured to write: ca.cert.pem in files mode only from the Secret's CA
// key (the sidecar copies its ATHENZ_CA_FILE there).
func TestFilesModeCAFileIsWritten(t *testing.T) {
	for _, name := range []string{"files-mode", "files-mode-ca"} {
		pod := patchedPod(t, name)
		app := envOf(&pod.Spec.Containers[0])
		sc := envOf(findContainer(pod, SidecarName))
		_, told := app[EnvCAFile]
		_, source := sc["ATHENZ_CA_FILE"]
		if told != source {
			t.Errorf("%s: app container has %s: %v, sidecar has a CA source (ATHENZ_CA_FILE): %v; want both or neither", name, EnvCAFile, told, source)
		}
		if source && sc["ATHENZ_CA_FILE"] != certDir+"/"+certCAFile {
			t.Errorf("%s: sidecar ATHENZ_CA_FILE = %q, want the Secret's CA key at %s/%s", name, sc["ATHENZ_CA_FILE"], certDir, certCAFile)
		}
	}
}

// Defect 5: with nativeSidecar: Never every container got SIGTERM at once
// and the sidecar was gone while the app shut down. Now the regular
// sidecar container sleeps in preStop (default 5 s), bounded by the
// Pod's grace period.
func TestNeverSidecarOutlivesAppShutdown(t *testing.T) {
	pod := patchedPod(t, "native-never")
	var sc *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == SidecarName {
			sc = &pod.Spec.Containers[i]
		}
	}
	if sc == nil {
		t.Fatalf("no regular sidecar container in the native-never case")
	}
	if l := sc.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds != DefaultShutdownDelaySeconds {
		t.Errorf("regular sidecar lifecycle = %+v, want a preStop sleep of %d s", sc.Lifecycle, DefaultShutdownDelaySeconds)
	}
	short := loadCase(t, "native-never")
	short.pod.Spec.TerminationGracePeriodSeconds = new(int64(2))
	ops, err := Mutate(short.pod, nil, short.profile, testSettings)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if c, ok := op.Value.(corev1.Container); ok && c.Name == SidecarName {
			if got := c.Lifecycle.PreStop.Sleep.Seconds; got != 2 {
				t.Errorf("preStop sleep with a 2 s grace period = %d, want 2 (the API server refuses more)", got)
			}
		}
	}
}

// Defect 7: the sidecar was always the first init container, so with a
// mesh's CNI and a native mesh proxy it waited for ZTS before the proxy
// that carries its traffic could start. Now it goes after the proxy, and a
// proxy added after the injection moves it on reinvocation.
func TestPlacementAfterMeshProxy(t *testing.T) {
	pod := patchedPod(t, "istio-native")
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	want := []string{"istio-validation", "istio-proxy", SidecarName, "migrate"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("init containers %v, want %v", names, want)
	}
	if m := findContainer(pod, "istio-proxy"); len(m.Env) != 0 || len(m.VolumeMounts) != 0 {
		t.Errorf("istio-proxy got the identity: env %v mounts %v", m.Env, m.VolumeMounts)
	}
	moved := patchedPod(t, "mesh-reinvoked")
	if got := moved.Spec.InitContainers[1].Name; got != SidecarName {
		t.Errorf("after reinvocation the init containers are %s then %s, want the sidecar after linkerd-proxy", moved.Spec.InitContainers[0].Name, got)
	}
}

// Defect 8 (fuzzing): the only corpus entry of FuzzBuildPatch had no spec,
// so the fuzzer started from nothing worth mutating. Every seed of the
// stored corpus must now be a Pod with containers.
func TestFuzzCorpusIsRealPods(t *testing.T) {
	entries := fuzzCorpus(t, "FuzzBuildPatch")
	if len(entries) < 6 {
		t.Fatalf("testdata/fuzz/FuzzBuildPatch has %d entries, want real Pods of every kind (Deployments, Jobs, StatefulSets, hostNetwork, Windows, Guaranteed)", len(entries))
	}
	for name, raw := range entries {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil || len(pod.Spec.Containers) == 0 {
			t.Errorf("corpus entry %s is not a Pod with containers (%v): %.80s", name, err, raw)
		}
	}
}

// TestNewAnnotationsValidated: each per-Pod setting of issue 14 refuses a
// bad value with a message that names the annotation, before anything is
// injected: a root sidecar, a port outside 1-65535, a placement or a
// boolean that is not one, a container the Pod does not have.
func TestNewAnnotationsValidated(t *testing.T) {
	tests := []struct {
		annotation, value, want string
	}{
		{AnnotationAPIPort, "0", "integer from 1 to 65535"},
		{AnnotationHealthPort, "70000", "integer from 1 to 65535"},
		{AnnotationHealthPort, "8081", "api and health ports are both 8081"},
		{AnnotationRunAsUser, "0", "a user ID other than root's"},
		{AnnotationRunAsUser, "abc", "a user ID other than root's"},
		{AnnotationRunAsGroup, "-1", "a group ID"},
		{AnnotationInitOnly, "yes", `want "true" or "false"`},
		{AnnotationPlacement, "Middle", `want "Auto", "First" or "Last"`},
		{AnnotationShutdownDelay, "-5", "seconds"},
		{AnnotationInjectContainers, "App", "is not a container name"},
		{AnnotationInjectContainers, "app,sidecar-logger", `the Pod has no container or init container named "sidecar-logger"`},
		{AnnotationInjectContainers, " , ", "name at least one container"},
		{AnnotationImagePullSecrets, "Bad_Name", "is not a Secret name"},
	}
	for _, tt := range tests {
		t.Run(tt.annotation+"="+tt.value, func(t *testing.T) {
			c := loadCase(t, "one-container")
			c.pod.Annotations[tt.annotation] = tt.value
			_, err := Mutate(c.pod, nil, c.profile, testSettings)
			d, ok := IsDenial(err)
			if !ok || !strings.Contains(d.Msg, tt.want) || (!strings.Contains(d.Msg, tt.annotation) && tt.annotation != AnnotationHealthPort) {
				t.Errorf("Mutate with %s=%q = %v, want a denial naming the annotation and saying %q", tt.annotation, tt.value, err, tt.want)
			}
		})
	}
}
