package e2e_test

import (
	"encoding/json"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// The contract of an injected Pod (docs/injector.md), spelled out here
// rather than taken from pkg/webhook's constants, so that renaming one
// there fails this test.
const (
	volumeIdentity = "athenz-identity"
	volumeSAToken  = "athenz-sa-token"
	volumeZTSCA    = "athenz-zts-ca"
	identityDir    = "/var/run/athenz"
)

func checkNotInjected(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if v, ok := pod.Annotations[framework.AnnotationStatus]; ok {
		t.Errorf("pod %s of the Deployment without %s has %s=%s: injected without opting in", pod.Name, framework.AnnotationInject, framework.AnnotationStatus, v)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 || len(pod.Spec.Volumes) != 1 {
		t.Errorf("pod %s was changed without opting in: %s", pod.Name, framework.PodSummary(pod))
	}
}

// checkWorkloadMutated: the workload webhook copied the annotation into
// the Pod template and marked the copy.
func checkWorkloadMutated(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	if got := dep.Spec.Template.Annotations[framework.AnnotationInject]; got != "true" {
		t.Errorf("after %q, the Deployment's template has %s=%q, want \"true\" (copied by the workload webhook); template annotations %v",
			framework.AnnotateCommand, framework.AnnotationInject, got, dep.Spec.Template.Annotations)
	}
	if _, ok := dep.Annotations["athenz.io/inject-copied"]; !ok {
		t.Errorf("the Deployment has no athenz.io/inject-copied marker; annotations %v", dep.Annotations)
	}
}

// injectionStatus is the part of athenz.io/status the test reads.
type injectionStatus struct {
	Profile        string   `json:"profile"`
	Domain         string   `json:"domain"`
	Service        string   `json:"service"`
	Image          string   `json:"image"`
	NativeSidecar  bool     `json:"nativeSidecar"`
	InitContainers []string `json:"initContainers"`
	Volumes        []string `json:"volumes"`
}

func checkInjected(t *testing.T, s *framework.Scenario, pod *corev1.Pod) {
	t.Helper()
	raw, ok := pod.Annotations[framework.AnnotationStatus]
	if !ok {
		t.Fatalf("pod %s of the annotated Deployment has no %s: not injected; %s", pod.Name, framework.AnnotationStatus, framework.PodSummary(pod))
	}
	var st injectionStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%s = %s: %v", framework.AnnotationStatus, raw, err)
	}
	want := injectionStatus{
		Profile: framework.ReleaseNamespace + "/" + framework.ProfileName, Domain: framework.Domain, Service: framework.Service,
		Image: framework.SidecarImage, NativeSidecar: true,
		InitContainers: []string{framework.SidecarContainer}, Volumes: []string{volumeIdentity, volumeSAToken, volumeZTSCA},
	}
	if st.Profile != want.Profile || st.Domain != want.Domain || st.Service != want.Service || st.Image != want.Image ||
		st.NativeSidecar != want.NativeSidecar || !slices.Equal(st.InitContainers, want.InitContainers) || !slices.Equal(st.Volumes, want.Volumes) {
		t.Errorf("%s = %+v, want %+v", framework.AnnotationStatus, st, want)
	}
	if got := pod.Annotations["kubectl.kubernetes.io/default-container"]; got != framework.AppContainer {
		t.Errorf("kubectl.kubernetes.io/default-container = %q, want %q", got, framework.AppContainer)
	}

	// The sidecar: first init container, native, with a startup probe.
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != framework.SidecarContainer {
		t.Fatalf("the first init container is not %s: %s", framework.SidecarContainer, framework.PodSummary(pod))
	}
	sc := pod.Spec.InitContainers[0]
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy = %v, want Always (a native sidecar)", sc.RestartPolicy)
	}
	if p := sc.StartupProbe; p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{"/sidecar", "probe"}) {
		t.Errorf("sidecar startupProbe = %+v, want exec [/sidecar probe] (its output reaches the Pod's Events)", sc.StartupProbe)
	}
	if p := sc.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("sidecar readinessProbe = %+v, want httpGet /readyz", sc.ReadinessProbe)
	}
	if sc.Image != framework.SidecarImage || len(sc.Command) != 0 {
		t.Errorf("sidecar image %q command %q, want %q and the image's entrypoint", sc.Image, sc.Command, framework.SidecarImage)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range sc.Env {
		env[e.Name] = e
	}
	for name, value := range map[string]string{
		"ATHENZ_ZTS_URL":       s.ZTS.URL(),
		"ATHENZ_IDENTITY_MODE": "copper-argos",
		"ATHENZ_DOMAIN":        framework.Domain,
		"ATHENZ_SERVICE":       framework.Service,
		"ATHENZ_PROVIDER":      framework.Provider,
		"ATHENZ_DNS_SUFFIX":    framework.DNSSuffix,
		"ATHENZ_PREFETCH":      framework.Prefetch,
	} {
		if got := env[name].Value; got != value {
			t.Errorf("sidecar env %s = %q, want %q", name, got, value)
		}
	}
	for name, field := range map[string]string{"POD_UID": "metadata.uid", "POD_IP": "status.podIP", "SERVICE_ACCOUNT": "spec.serviceAccountName"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("sidecar env %s = %+v, want a fieldRef to %s", name, e, field)
		}
	}

	// Volumes.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols[volumeIdentity]; v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("volume %s = %+v, want an emptyDir in memory", volumeIdentity, v.VolumeSource)
	}
	var tok *corev1.ServiceAccountTokenProjection
	if v := vols[volumeSAToken]; v.Projected != nil && len(v.Projected.Sources) == 1 {
		tok = v.Projected.Sources[0].ServiceAccountToken
	}
	if tok == nil || tok.Audience != framework.TokenAudience || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != 3600 {
		t.Errorf("volume %s = %+v, want a projected service account token for audience %q, 3600 s", volumeSAToken, vols[volumeSAToken].VolumeSource, framework.TokenAudience)
	}
	// The injector's copy of the chart profile's CA bundle.
	if v := vols[volumeZTSCA]; v.ConfigMap == nil || v.ConfigMap.Name != "athenz-zts-ca-"+framework.ProfileName {
		t.Errorf("volume %s = %+v, want ConfigMap athenz-zts-ca-%s", volumeZTSCA, v.VolumeSource, framework.ProfileName)
	}

	// The app container: the identity volume read-only, the sidecar's URL.
	app, err := framework.FindContainer(pod, framework.AppContainer)
	if err != nil {
		t.Fatal(err)
	}
	var mounted bool
	for _, m := range app.VolumeMounts {
		mounted = mounted || (m.Name == volumeIdentity && m.MountPath == identityDir && m.ReadOnly)
	}
	if !mounted {
		t.Errorf("app container mounts %+v, want %s read-only at %s", app.VolumeMounts, volumeIdentity, identityDir)
	}
	appEnv := map[string]string{}
	for _, e := range app.Env {
		appEnv[e.Name] = e.Value
	}
	for name, value := range map[string]string{
		"ATHENZ_SIDECAR_URL": "http://127.0.0.1:8081",
		"ATHENZ_CERT_FILE":   identityDir + "/service.cert.pem",
		"ATHENZ_KEY_FILE":    identityDir + "/service.key.pem",
		"ATHENZ_CA_FILE":     identityDir + "/ca.cert.pem",
	} {
		if appEnv[name] != value {
			t.Errorf("app container env %s = %q, want %q", name, appEnv[name], value)
		}
	}
}
