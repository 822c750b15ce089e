package provider_test

import (
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// TestConfirmWaitsForPodIP: the kubelet writes a Pod's IP into its status
// only after the sandbox and the first container started, and that
// container may be the sidecar registering at once. A Pod bound to a node
// whose IP is not in its status yet is confirmed as soon as the IP
// appears; one whose IP never comes within PodIPWait is refused; one not
// bound to a node is refused at once.
func TestConfirmWaitsForPodIP(t *testing.T) {
	ns := uniqueNamespace("ip-wait")
	domain := tokens.NamespaceToDomain(ns)
	bound := func(name string) *corev1.Pod {
		pod := newPod(t, podSpec{namespace: ns, name: name, serviceAccount: "web"})
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
		if err := cp.cs.CoreV1().Pods(ns).Bind(t.Context(), b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return pod
	}
	withIP := func(pod *corev1.Pod, ip string) provider.InstanceConfirmation {
		req := request(pod, domain, "web", mintToken(t, pod, audience, false))
		req.Attributes["sanIP"] = ip
		return req
	}

	t.Run("the IP comes", func(t *testing.T) {
		pod := bound("early")
		req := withIP(pod, "10.9.0.1")
		go func() {
			time.Sleep(time.Second)
			p, err := cp.cs.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			p.Status.PodIP, p.Status.PodIPs, p.Status.Phase = "10.9.0.1", []corev1.PodIP{{IP: "10.9.0.1"}}, corev1.PodPending
			if _, err := cp.cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
		}()
		began := time.Now()
		check(t, newHandler(t, nil, nil), provider.PathInstance, req, http.StatusOK)
		if took := time.Since(began); took < time.Second {
			t.Errorf("confirmed after %v, before the IP was in the status", took)
		}
	})
	t.Run("the IP never comes", func(t *testing.T) {
		pod := bound("never")
		h := newHandler(t, nil, func(o *provider.Options) { o.PodIPWait = 300 * time.Millisecond })
		check(t, h, provider.PathInstance, withIP(pod, "10.9.0.2"), http.StatusForbidden, "has no IP yet")
	})
	t.Run("not bound to a node", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "unbound", serviceAccount: "web"})
		began := time.Now()
		check(t, newHandler(t, nil, nil), provider.PathInstance, withIP(pod, "10.9.0.3"), http.StatusForbidden, "has no IP yet")
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("refused after %v: a Pod on no node has no IP to wait for", took)
		}
	})
}
