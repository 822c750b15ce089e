package app_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// Defect 2 of issue 14: the sidecar's requests and limits differed, so a
// Guaranteed Pod became Burstable and lost the CPU manager's pinning. The
// QoS class is the API server's own (status.qosClass, set on creation of
// the injected Pod).
func TestGuaranteedStaysGuaranteed(t *testing.T) {
	ns := newNamespace(t, "qos", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	res := corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi"),
	}}
	pod := newPod(ns, "trader", injectTrue)
	pod.Spec.Containers[0].Resources = res
	if err := k8s.Create(t.Context(), pod); err != nil {
		t.Fatalf("creating a Guaranteed Pod: %v", err)
	}
	checkInjected(t, pod, true)
	if pod.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("the injected Pod's QoS class is %s, want Guaranteed (sidecar resources %+v)", pod.Status.QOSClass, pod.Spec.InitContainers[0].Resources)
	}
}

// Defect 3: a Windows Pod that opted in was injected and then refused by
// the API server for the Linux sidecar's security context; now the
// injector refuses it and says why.
func TestWindowsPodRefusedClearly(t *testing.T) {
	ns := newNamespace(t, "windows", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	pod := newPod(ns, "iis", injectTrue)
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	err := k8s.Create(t.Context(), pod)
	if err == nil || !strings.Contains(err.Error(), "runs on Windows") {
		t.Errorf("creating an opted-in Windows Pod: %v; want the injector's refusal saying it runs on Windows", err)
	}
}

// TestSettingsAdmitted: a Pod with every per-Pod setting of issue 14 is
// injected and the API server accepts the result (the preStop sleep within
// the grace period, the pull secrets, ports and IDs).
func TestSettingsAdmitted(t *testing.T) {
	ns := newNamespace(t, "settings", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	pod := newPod(ns, "web", map[string]string{
		webhook.AnnotationInject:           "true",
		webhook.AnnotationNativeSidecar:    "false",
		webhook.AnnotationAPIPort:          "9081",
		webhook.AnnotationHealthPort:       "9082",
		webhook.AnnotationRunAsUser:        "1000",
		webhook.AnnotationRunAsGroup:       "3000",
		webhook.AnnotationImagePullSecrets: "regcred",
		webhook.AnnotationShutdownDelay:    "60",
	})
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
	if err := k8s.Create(t.Context(), pod); err != nil {
		t.Fatalf("creating a Pod with every setting: %v", err)
	}
	var sc *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == webhook.SidecarName {
			sc = &pod.Spec.Containers[i]
		}
	}
	if sc == nil || sc.Lifecycle == nil || sc.Lifecycle.PreStop.Sleep.Seconds != 10 || *sc.SecurityContext.RunAsUser != 1000 || *sc.SecurityContext.RunAsGroup != 3000 {
		t.Errorf("sidecar = %+v, want a preStop sleep of 10 s (the grace period) and user 1000 group 3000", sc)
	}
	if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("imagePullSecrets = %v, want [regcred]", pod.Spec.ImagePullSecrets)
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite pkg/webhook/testdata/fuzz/FuzzBuildPatch from the API server")

// TestFuzzCorpusFromAPIServer: the seeds of FuzzBuildPatch are Pods as the
// API server hands them to the webhook (defaulted, with the labels,
// owners and fields their controllers set): a Deployment's, a Job's, a
// StatefulSet's, a hostNetwork DaemonSet's, a Windows and a Guaranteed
// Pod, each opted in. They are made with a server-side dry run here;
// -update-corpus rewrites the corpus, and without it the test fails when
// the stored corpus is not what the API server makes of them now.
func TestFuzzCorpusFromAPIServer(t *testing.T) {
	ns := newNamespace(t, "corpus", nil)
	profile, err := os.ReadFile(filepath.Join("..", "testdata", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	profileJSON, err := yaml.YAMLToJSON(profile)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "testdata", "fuzz", "FuzzBuildPatch")
	for name, pod := range corpusPods(ns) {
		if err := k8s.Create(t.Context(), pod, client.DryRunAll); err != nil {
			t.Fatalf("dry-run create of %s: %v", name, err)
		}
		pod.UID, pod.CreationTimestamp, pod.ManagedFields, pod.ResourceVersion = "", metav1.Time{}, nil, ""
		pod.Status = corev1.PodStatus{}
		pod.Annotations = map[string]string{webhook.AnnotationInject: "true"} // as the Pod opts in
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		entry := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n[]byte(%s)\nbool(false)\n", strconv.Quote(string(raw)), strconv.Quote(string(profileJSON)))
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.WriteFile(path, []byte(entry), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil || string(have) != entry {
			t.Errorf("%s is not what the API server makes of the %s Pod now (%v): run go test ./pkg/webhook/app -run TestFuzzCorpusFromAPIServer -update-corpus", path, name, err)
		}
	}
}

// corpusPods are Pods as the controllers of each kind create them.
func corpusPods(ns string) map[string]*corev1.Pod {
	app := func() corev1.PodSpec {
		return corev1.PodSpec{
			ServiceAccountName: "web",
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example.com/web:1.0",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
			}},
		}
	}
	owner := func(kind, name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "6b5f2d8e-0000-4000-8000-000000000001", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	}
	pods := map[string]*corev1.Pod{}

	dep := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-7d4b9c6f5-x2k8p",
		Labels:          map[string]string{"app": "web", "pod-template-hash": "7d4b9c6f5"},
		OwnerReferences: owner("ReplicaSet", "web-7d4b9c6f5")}, Spec: app()}
	pods["deployment"] = dep

	job := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report-28935120-q7r2m",
		Labels: map[string]string{"batch.kubernetes.io/job-name": "report-28935120", "batch.kubernetes.io/controller-uid": "6b5f2d8e-0000-4000-8000-000000000002"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "report-28935120", UID: "6b5f2d8e-0000-4000-8000-000000000002",
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}}, Spec: app()}
	job.Spec.RestartPolicy = corev1.RestartPolicyNever
	job.Spec.Containers[0].Command = []string{"report", "--once"}
	pods["job"] = job

	sts := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-0",
		Labels:          map[string]string{"app": "db", "statefulset.kubernetes.io/pod-name": "db-0", "apps.kubernetes.io/pod-index": "0"},
		OwnerReferences: owner("StatefulSet", "db")}, Spec: app()}
	sts.Spec.Hostname, sts.Spec.Subdomain = "db-0", "db"
	sts.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}}}
	sts.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/db"}}
	pods["statefulset"] = sts

	ds := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-5xq7z",
		Labels:          map[string]string{"app": "agent", "controller-revision-hash": "6f8d9c7b5", "pod-template-generation": "1"},
		OwnerReferences: owner("DaemonSet", "agent")}, Spec: app()}
	ds.Spec.HostNetwork, ds.Spec.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet
	ds.Spec.Containers[0].Ports[0].HostPort = 8080
	ds.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	ds.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-1"}}}}}}}}
	pods["hostnetwork-daemonset"] = ds

	win := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "iis"}, Spec: app()}
	win.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	win.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
	pods["windows"] = win

	g := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trader"}, Spec: app()}
	g.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	pods["guaranteed"] = g
	return pods
}
