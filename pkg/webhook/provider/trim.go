package provider

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrimPod is a cache transform for Pods (controller-runtime's
// cache.ByObject{Transform: provider.TrimPod}) that keeps only what the
// callback reads: name, namespace, uid, resource version, labels,
// annotations, owners, finalizers, creation and deletion times,
// spec.serviceAccountName, spec.nodeName, status.phase and the Pod IPs. A
// cluster-wide Pod informer then holds a few hundred bytes per Pod rather
// than the whole object. Do not use it if something else in the process
// reads other fields of cached Pods. Objects other than *corev1.Pod (such
// as deletion tombstones) are returned unchanged.
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
			Labels:                     pod.Labels,
			Annotations:                pod.Annotations,
			OwnerReferences:            pod.OwnerReferences,
			Finalizers:                 pod.Finalizers,
			CreationTimestamp:          pod.CreationTimestamp,
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
