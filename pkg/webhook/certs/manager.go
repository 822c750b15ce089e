package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// RBAC of auto mode, in the injector's namespace for the Secret and on the
// one webhook configuration: reads go to the API server (no informer), the
// Secret is created once and then updated with its resourceVersion, and
// caBundle is set with a patch. create cannot be limited by name.
//
// +kubebuilder:rbac:groups="",namespace=athenz-injector,resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",namespace=athenz-injector,resources=secrets,resourceNames=athenz-injector-webhook-tls,verbs=get;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,resourceNames=athenz-injector,verbs=get;patch

// errNotSynced is what Ready says until the first Sync has succeeded.
var errNotSynced = errors.New("webhook serving certificate not written and caBundle not set yet")

// maxAttempts bounds the retries of one Sync when other replicas keep
// changing the Secret or the webhook configuration under it.
const maxAttempts = 5

// Manager keeps the webhook's CA and serving certificate in a Secret, the
// serving certificate and key in CertDir, and the webhooks' caBundle in
// step. Create it with New, add it to a controller-runtime manager with
// mgr.Add, and add Ready as a readiness check.
type Manager struct {
	opts    Options
	started atomic.Bool
	// syncMu serializes Sync.
	syncMu sync.Mutex

	mu sync.Mutex // guards synced
	// synced is what the last successful Sync installed; nil before.
	synced *synced
}

// synced is what one successful Sync installed.
type synced struct {
	bundle   []*x509.Certificate
	notAfter time.Time // of the serving certificate
}

var (
	_ manager.Runnable               = (*Manager)(nil)
	_ manager.LeaderElectionRunnable = (*Manager)(nil)
)

// New checks opts and returns a Manager. It does not reach the API server.
func New(opts Options) (*Manager, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Manager{opts: opts}, nil
}

// NeedLeaderElection is false: every replica keeps its own CertDir and
// takes part in keeping the shared Secret.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start runs Sync at once and then every Interval (±10%) until ctx is
// done; a failed Sync is logged and retried with backoff. It returns nil
// when ctx is done, and an error only when called twice.
func (m *Manager) Start(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("certs: manager already started")
	}
	log := m.opts.Logger
	log.Info("starting webhook certificate manager", "namespace", m.opts.Namespace, "secret", m.opts.SecretName,
		"webhookConfiguration", m.opts.WebhookConfigName, "certDir", m.opts.CertDir)
	const minBackoff = time.Second
	backoff := minBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		wait := jitter(m.opts.Interval)
		if err := m.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = min(backoff, wait)
			log.Error(err, "cannot sync the webhook certificate, retrying", "after", wait.String())
			backoff = min(2*backoff, m.opts.Interval)
		} else {
			backoff = minBackoff
		}
		timer.Reset(wait)
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// Ready is a readiness check (healthz.Checker): nil once a Sync has written
// the serving certificate and set the caBundle, as long as that
// certificate has not expired.
func (m *Manager) Ready(*http.Request) error {
	m.mu.Lock()
	s := m.synced
	m.mu.Unlock()
	if s == nil {
		return errNotSynced
	}
	if now := m.opts.Now(); !now.Before(s.notAfter) {
		return fmt.Errorf("webhook serving certificate expired at %s and was not renewed", s.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Sync reconciles once: it makes sure the Secret holds a valid CA and
// serving certificate (creating or renewing them if needed), that every
// webhook's caBundle is the Secret's CA bundle, and that CertDir holds the
// Secret's serving certificate and key, in that order. Start calls it
// periodically; calling it directly, e.g. before serving, is safe.
func (m *Manager) Sync(ctx context.Context) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	var lastErr error
	for range maxAttempts {
		s, err := m.ensureSecret(ctx)
		if err != nil {
			return err
		}
		c := parseSecret(s.Data)
		err = m.ensureCABundle(ctx, encodeCerts(c.bundle), s.ResourceVersion)
		if errors.Is(err, errSecretChanged) {
			lastErr = err
			continue
		}
		if err != nil {
			return err
		}
		if err := m.writeFiles(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
			return err
		}
		m.mu.Lock()
		m.synced = &synced{bundle: c.bundle, notAfter: c.leaf.NotAfter}
		m.mu.Unlock()
		return nil
	}
	return fmt.Errorf("secret %s/%s kept changing: %w", m.opts.Namespace, m.opts.SecretName, lastErr)
}

func (m *Manager) lastBundle() []*x509.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.synced == nil {
		return nil
	}
	return m.synced.bundle
}

// ensureSecret returns the Secret once it holds a usable CA and serving
// certificate: as read, or after creating or renewing it. When another
// replica wins a race (AlreadyExists, Conflict), it reads the Secret again
// and uses the winner's certificates if they are valid.
func (m *Manager) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	o := &m.opts
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName}
	log := o.Logger.WithValues("secret", key.String())
	for range maxAttempts {
		now := o.Now()
		s := &corev1.Secret{}
		err := o.Reader.Get(ctx, key, s)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading secret %s: %w", key, err)
		}
		exists := err == nil
		c := &contents{}
		v := verdict{reason: "secret does not exist", newCA: true}
		if exists {
			c = parseSecret(s.Data)
			v = m.check(c, now)
			if v.reason == "" {
				log.V(1).Info("webhook certificate is valid", "notAfter", c.leaf.NotAfter)
				return s, nil
			}
		}
		data, err := m.issue(c, v, now)
		if err != nil {
			return nil, fmt.Errorf("issuing webhook certificate for secret %s: %w", key, err)
		}
		// Never store what the next check would replace again: that would
		// make the replicas renew in a loop.
		if nv := m.check(parseSecret(merge(s.Data, data)), now); nv.reason != "" {
			return nil, fmt.Errorf("issued webhook certificate is not usable (%s): check the lifetimes", nv.reason)
		}

		if !exists {
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: o.Namespace,
					Name:      o.SecretName,
					Labels:    map[string]string{"app.kubernetes.io/managed-by": "athenz-injector"},
				},
				Type: corev1.SecretTypeTLS,
				Data: data,
			}
			err = o.Client.Create(ctx, s)
			if apierrors.IsAlreadyExists(err) {
				log.Info("another replica created the secret first, using its certificates")
				continue
			}
		} else {
			// The Update carries the resourceVersion read above: if another
			// replica wrote in between, it fails with Conflict.
			s.Data = merge(s.Data, data)
			err = o.Client.Update(ctx, s)
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				log.Info("the secret changed while renewing, using the new one")
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("writing secret %s: %w", key, err)
		}
		nc := parseSecret(s.Data)
		log.Info("issued webhook serving certificate", "reason", v.reason, "newCA", v.newCA,
			"names", leafNames(nc.leaf), "notAfter", nc.leaf.NotAfter, "caNotAfter", nc.ca.NotAfter)
		return s, nil
	}
	return nil, fmt.Errorf("secret %s kept changing while renewing it", key)
}

// merge returns a copy of old with the keys of data set.
func merge(old, data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(old)+len(data))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range data {
		out[k] = v
	}
	return out
}
