package provider

import (
	"context"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkedPrefix is the prefix of the only labels and annotations the
// callback's checks read (athenz.io/profile, domain, service and rev,
// through webhook.Resolver).
const checkedPrefix = "athenz.io/"

// PodCache is the callback's cache of every Pod of the cluster (an
// informer: list and watch), holding of each only what the checks read:
// name, namespace, uid, resource version, the athenz.io/ labels and
// annotations, the deletion time, spec.serviceAccountName, spec.nodeName,
// status.phase and the Pod IPs, in a compact record (podFacts) rather than
// a corev1.Pod, whose struct alone is 1.2 KB. 10,000 Pods then take a few
// MB whatever their other labels and annotations (kubectl's
// last-applied-configuration alone is often kilobytes); docs/performance.md
// has the figures. It is a client.Reader of *corev1.Pod by key (Get only):
// the Pod it returns has those fields and no others.
type PodCache struct {
	informer toolscache.SharedIndexInformer
}

// NewPodCache returns the cache of the cluster's Pods; Start runs it.
func NewPodCache(cs kubernetes.Interface) *PodCache {
	lw := toolscache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "pods", metav1.NamespaceAll, fields.Everything())
	inf := toolscache.NewSharedIndexInformerWithOptions(lw, &corev1.Pod{}, toolscache.SharedIndexInformerOptions{})
	// Before Run: the informer stores what the transform returns.
	_ = inf.SetTransform(compactPod)
	return &PodCache{informer: inf}
}

// Start runs the informer until ctx ends (a manager.Runnable).
func (c *PodCache) Start(ctx context.Context) error {
	c.informer.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection is false: every replica serves the callback, so every
// replica caches the Pods (a manager.LeaderElectionRunnable; without it
// the manager would start the cache on the leader only).
func (c *PodCache) NeedLeaderElection() bool { return false }

// HasSynced reports whether the first list is in the cache.
func (c *PodCache) HasSynced() bool { return c.informer.HasSynced() }

// Get reads the Pod key into obj, a *corev1.Pod.
func (c *PodCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return errors.New("provider.PodCache holds Pods only")
	}
	item, exists, err := c.informer.GetIndexer().GetByKey(key.String())
	if err != nil {
		return err
	}
	if !exists {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, key.Name)
	}
	*pod = item.(*podFacts).pod()
	return nil
}

// List is not served: the callback reads Pods by key.
func (c *PodCache) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("provider.PodCache serves Get only")
}

// podFacts is what the cache keeps of a Pod. The embedded ObjectMeta
// holds only name, namespace, uid, resource version, the checked labels
// and annotations and the deletion time; it gives the informer the keys it
// needs.
type podFacts struct {
	metav1.ObjectMeta
	serviceAccount, node string
	phase                corev1.PodPhase
	ips                  []string // status.podIPs, the first being status.podIP
}

// compactPod is the informer's transform. Objects other than *corev1.Pod
// (deletion tombstones) are returned unchanged.
func compactPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	f := &podFacts{
		ObjectMeta: metav1.ObjectMeta{
			Name:                       pod.Name,
			Namespace:                  pod.Namespace,
			UID:                        pod.UID,
			ResourceVersion:            pod.ResourceVersion,
			Labels:                     checked(pod.Labels),
			Annotations:                checked(pod.Annotations),
			DeletionTimestamp:          pod.DeletionTimestamp,
			DeletionGracePeriodSeconds: pod.DeletionGracePeriodSeconds,
		},
		serviceAccount: pod.Spec.ServiceAccountName,
		node:           pod.Spec.NodeName,
		phase:          pod.Status.Phase,
	}
	switch {
	case len(pod.Status.PodIPs) > 0:
		f.ips = make([]string, len(pod.Status.PodIPs))
		for i, ip := range pod.Status.PodIPs {
			f.ips[i] = ip.IP
		}
	case pod.Status.PodIP != "":
		f.ips = []string{pod.Status.PodIP}
	}
	return f, nil
}

// pod rebuilds the Pod the checks read.
func (f *podFacts) pod() corev1.Pod {
	p := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: *f.DeepCopy(),
		Spec:       corev1.PodSpec{ServiceAccountName: f.serviceAccount, NodeName: f.node},
		Status:     corev1.PodStatus{Phase: f.phase},
	}
	if len(f.ips) > 0 {
		p.Status.PodIP = f.ips[0]
		p.Status.PodIPs = make([]corev1.PodIP, len(f.ips))
		for i, ip := range f.ips {
			p.Status.PodIPs[i] = corev1.PodIP{IP: ip}
		}
	}
	return p
}

// checked keeps the athenz.io/ entries of m; nil when there are none.
func checked(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, checkedPrefix) {
			if out == nil {
				out = make(map[string]string, 4)
			}
			out[k] = v
		}
	}
	return out
}
