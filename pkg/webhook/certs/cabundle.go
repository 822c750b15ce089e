package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errSecretChanged: the Secret changed after it was read, so the caBundle
// derived from it may be stale.
var errSecretChanged = errors.New("secret changed while setting caBundle")

// ensureCABundle sets clientConfig.caBundle of every webhook of the
// MutatingWebhookConfiguration to bundle, which was derived from the Secret
// at secretVersion. The patch carries the configuration's resourceVersion,
// so a concurrent change makes it retry on fresh data.
//
// A replica whose view of the Secret is stale must not take a new CA out
// of the caBundle. So before an update that removes a certificate, the
// Secret is read again; if it moved on, errSecretChanged tells Sync to
// start over.
func (m *Manager) ensureCABundle(ctx context.Context, bundle []byte, secretVersion string) error {
	o := &m.opts
	key := types.NamespacedName{Name: o.WebhookConfigName}
	for range maxAttempts {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := o.Reader.Get(ctx, key, cfg); err != nil {
			return fmt.Errorf("reading mutatingwebhookconfiguration %s: %w", o.WebhookConfigName, err)
		}
		var stale []int
		removes := false
		for i, wh := range cfg.Webhooks {
			if bytes.Equal(wh.ClientConfig.CABundle, bundle) {
				continue
			}
			stale = append(stale, i)
			removes = removes || removesCerts(wh.ClientConfig.CABundle, bundle)
		}
		if len(stale) == 0 {
			return nil
		}
		if removes {
			if err := m.secretUnchanged(ctx, secretVersion); err != nil {
				return err
			}
		}
		// A strategic merge patch names only the changed caBundles (the
		// webhooks list merges by name), so fields this client's API
		// version does not know survive; the optimistic lock adds the
		// resourceVersion read above.
		patch := client.StrategicMergeFrom(cfg.DeepCopy(), client.MergeFromWithOptimisticLock{})
		for _, i := range stale {
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
		}
		err := o.Client.Patch(ctx, cfg, patch)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("updating caBundle of mutatingwebhookconfiguration %s: %w", o.WebhookConfigName, err)
		}
		o.Logger.Info("set caBundle of the webhooks", "webhookConfiguration", o.WebhookConfigName,
			"webhooks", len(stale), "cas", len(parseCerts(bundle)))
		return nil
	}
	return fmt.Errorf("mutatingwebhookconfiguration %s kept changing while setting caBundle", o.WebhookConfigName)
}

// removesCerts reports whether replacing the bundle old with new drops a
// certificate that old holds.
func removesCerts(old, new []byte) bool {
	next := parseCerts(new)
	for _, c := range parseCerts(old) {
		if !slices.ContainsFunc(next, c.Equal) {
			return true
		}
	}
	return false
}

func (m *Manager) secretUnchanged(ctx context.Context, version string) error {
	o := &m.opts
	s := &corev1.Secret{}
	if err := o.Reader.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName}, s); err != nil {
		return fmt.Errorf("reading secret %s/%s again: %w", o.Namespace, o.SecretName, err)
	}
	if s.ResourceVersion != version {
		return errSecretChanged
	}
	return nil
}
