package provider

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkedPrefix is the prefix of the only labels and annotations the
// callback's checks read (athenz.io/profile, domain, service and rev,
// through webhook.Resolver).
const checkedPrefix = "athenz.io/"

// TrimPod is a cache transform for Pods (controller-runtime's
// cache.ByObject{Transform: provider.TrimPod}) that keeps only what the
// callback's checks read: name, namespace, uid, resource version, the
// athenz.io/ labels and annotations, the deletion time,
// spec.serviceAccountName, spec.nodeName, status.phase and the Pod IPs.
// A cluster-wide Pod informer then holds a few hundred bytes per Pod
// rather than the whole object, whatever the Pods' other labels and
// annotations (kubectl's last-applied-configuration alone is often
// kilobytes). Do not use it if something else in the process reads other
// fields of cached Pods. Objects other than *corev1.Pod (such as deletion
// tombstones) are returned unchanged.
func TrimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
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
		Spec: corev1.PodSpec{
			ServiceAccountName: pod.Spec.ServiceAccountName,
			NodeName:           pod.Spec.NodeName,
		},
		Status: corev1.PodStatus{
			Phase:  pod.Status.Phase,
			PodIP:  pod.Status.PodIP,
			PodIPs: pod.Status.PodIPs,
		},
	}, nil
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
