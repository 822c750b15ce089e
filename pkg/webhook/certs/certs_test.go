package certs_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
)

const day = 24 * time.Hour

// assertConverged checks the end state of replicas writing to dirs: one CA
// in the Secret, every webhook's caBundle equal to the Secret's bundle,
// and the same serving certificate in every dir, verifying against the
// caBundle for the Service's name. It returns the Secret.
func assertConverged(t *testing.T, f *fixture, now time.Time, dirs ...string) *corev1.Secret {
	t.Helper()
	s := f.getSecret(t)
	if cas := pemCerts(t, s.Data[certs.KeyCACert]); len(cas) != 1 {
		t.Fatalf("secret %s holds %d certificates, want 1", certs.KeyCACert, len(cas))
	}
	bundle := f.caBundle(t)
	if !bytes.Equal(bundle, s.Data[certs.KeyCABundle]) {
		t.Fatalf("caBundle\n%s\nwant the secret's %s\n%s", bundle, certs.KeyCABundle, s.Data[certs.KeyCABundle])
	}
	for _, dir := range dirs {
		verify(t, bundle, dir, f.serviceName(), now)
		if got := readFile(t, filepath.Join(dir, "tls.crt")); !bytes.Equal(got, s.Data["tls.crt"]) {
			t.Fatalf("%s/tls.crt differs from the secret's tls.crt", dir)
		}
		if got := readFile(t, filepath.Join(dir, "tls.key")); !bytes.Equal(got, s.Data["tls.key"]) {
			t.Fatalf("%s/tls.key differs from the secret's tls.key", dir)
		}
	}
	return s
}

// Two replicas started together end with one CA, a caBundle that verifies
// the certificate each of them wrote, and then leave everything alone.
func TestTwoReplicasConverge(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	dirs := []string{t.TempDir(), t.TempDir()}
	var managers []*certs.Manager
	for _, dir := range dirs {
		o := f.options(t, dir)
		o.Interval = 100 * time.Millisecond
		managers = append(managers, f.newManager(t, o))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(managers))
	for i, m := range managers {
		wg.Go(func() { errs[i] = m.Start(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: Start: %v, want nil after cancel", i, err)
			}
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for _, m := range managers {
		for m.Ready(nil) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("Ready: %v after 15s, want nil", m.Ready(nil))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s := assertConverged(t, f, time.Now(), dirs...)
	cfg := f.getConfig(t)
	if err := managers[0].Start(ctx); err == nil {
		t.Error("second Start: nil, want an error")
	}

	// About ten more cycles each: nothing may change.
	time.Sleep(time.Second)
	if got := f.getSecret(t); got.ResourceVersion != s.ResourceVersion {
		t.Errorf("secret resourceVersion went from %s to %s after convergence, want no change", s.ResourceVersion, got.ResourceVersion)
	}
	if got := f.getConfig(t); got.ResourceVersion != cfg.ResourceVersion {
		t.Errorf("webhook configuration resourceVersion went from %s to %s after convergence, want no change", cfg.ResourceVersion, got.ResourceVersion)
	}
	assertConverged(t, f, time.Now(), dirs...)
}

// Replicas that Sync at the same instant, over several rounds, never end
// with two CAs.
func TestConcurrentSync(t *testing.T) {
	for round := range 4 {
		t.Run(string(rune('a'+round)), func(t *testing.T) {
			f := newFixture(t)
			dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make([]error, len(dirs))
			for i, dir := range dirs {
				m := f.newManager(t, f.options(t, dir))
				wg.Go(func() {
					<-start
					errs[i] = m.Sync(t.Context())
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("replica %d: Sync: %v", i, err)
				}
			}
			assertConverged(t, f, time.Now(), dirs...)
		})
	}
}

// hookClient runs a hook once, before the first Create or Update of a
// Secret, to let "another replica" win the race deterministically.
type hookClient struct {
	client.Client
	once sync.Once
	hook func()
}

func (h *hookClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		h.once.Do(h.hook)
	}
	return h.Client.Create(ctx, obj, opts...)
}

func (h *hookClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		h.once.Do(h.hook)
	}
	return h.Client.Update(ctx, obj, opts...)
}

// A replica that loses the race to create the Secret uses the winner's
// certificates and writes nothing.
func TestLostCreateRace(t *testing.T) {
	f := newFixture(t)
	winnerDir, loserDir := t.TempDir(), t.TempDir()
	winner := f.newManager(t, f.options(t, winnerDir))
	var afterWin string
	hc := &hookClient{Client: k8s, hook: func() {
		if err := winner.Sync(t.Context()); err != nil {
			t.Errorf("winner: Sync: %v", err)
		}
		afterWin = f.getSecret(t).ResourceVersion
	}}
	o := f.options(t, loserDir)
	o.Client = hc
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("loser: Sync: %v", err)
	}
	if afterWin == "" {
		t.Fatal("the loser never tried to create the secret")
	}
	s := assertConverged(t, f, time.Now(), winnerDir, loserDir)
	if s.ResourceVersion != afterWin {
		t.Errorf("secret resourceVersion %s, want the winner's %s: the loser wrote it", s.ResourceVersion, afterWin)
	}
}

// A replica that loses the race to renew the Secret (Conflict) uses the
// winner's renewal.
func TestLostRenewRace(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now()
	if err := f.newManager(t, f.options(t, t.TempDir())).Sync(t.Context()); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	before := f.getSecret(t)

	later := t0.Add(300 * day) // the serving certificate is due, the CA is not
	winnerDir, loserDir := t.TempDir(), t.TempDir()
	wo := f.options(t, winnerDir)
	wo.Now = at(later)
	winner := f.newManager(t, wo)
	var afterWin string
	hc := &hookClient{Client: k8s, hook: func() {
		if err := winner.Sync(t.Context()); err != nil {
			t.Errorf("winner: Sync: %v", err)
		}
		afterWin = f.getSecret(t).ResourceVersion
	}}
	lo := f.options(t, loserDir)
	lo.Client, lo.Now = hc, at(later)
	if err := f.newManager(t, lo).Sync(t.Context()); err != nil {
		t.Fatalf("loser: Sync: %v", err)
	}
	if afterWin == "" {
		t.Fatal("the loser never tried to update the secret")
	}
	s := assertConverged(t, f, later, winnerDir, loserDir)
	if s.ResourceVersion != afterWin {
		t.Errorf("secret resourceVersion %s, want the winner's %s: the loser wrote it", s.ResourceVersion, afterWin)
	}
	if !bytes.Equal(s.Data[certs.KeyCACert], before.Data[certs.KeyCACert]) {
		t.Error("the CA changed, want only the serving certificate renewed")
	}
}

// A serving certificate due for renewal is renewed with the same CA; the
// caBundle does not change and verifies the new certificate.
func TestRenewServingCertificate(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now()
	if err := f.newManager(t, f.options(t, t.TempDir())).Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0: %v", err)
	}
	first := f.getSecret(t)
	cfg := f.getConfig(t)
	firstLeaf := pemCerts(t, first.Data["tls.crt"])[0]

	// 200 days in: a year's certificate is renewed after two thirds
	// (about 243 days), so nothing happens yet.
	o := f.options(t, t.TempDir())
	o.Now = at(t0.Add(200 * day))
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0+200d: %v", err)
	}
	if got := f.getSecret(t); got.ResourceVersion != first.ResourceVersion {
		t.Fatalf("secret rewritten at t0+200d, want no renewal before two thirds of the lifetime")
	}

	later := t0.Add(300 * day)
	dir := t.TempDir()
	o = f.options(t, dir)
	o.Now = at(later)
	m := f.newManager(t, o)
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0+300d: %v", err)
	}
	renewed := f.getSecret(t)
	if renewed.ResourceVersion == first.ResourceVersion {
		t.Fatal("serving certificate not renewed at t0+300d")
	}
	for _, k := range []string{certs.KeyCACert, certs.KeyCAKey, certs.KeyCABundle} {
		if !bytes.Equal(renewed.Data[k], first.Data[k]) {
			t.Errorf("secret %s changed on a serving certificate renewal, want it kept", k)
		}
	}
	if got := f.getConfig(t); got.ResourceVersion != cfg.ResourceVersion {
		t.Error("webhook configuration updated on a serving certificate renewal, want the caBundle unchanged")
	}
	leaf := verify(t, f.caBundle(t), dir, f.serviceName(), later)
	if leaf.SerialNumber.Cmp(firstLeaf.SerialNumber) == 0 {
		t.Error("CertDir holds the old serving certificate")
	}
	if want := later.Add(365 * day); !leaf.NotAfter.Equal(want.Truncate(time.Second)) {
		t.Errorf("renewed certificate expires %s, want %s", leaf.NotAfter, want)
	}
	// Converged: a second Sync changes nothing.
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("second Sync at t0+300d: %v", err)
	}
	if got := f.getSecret(t); got.ResourceVersion != renewed.ResourceVersion {
		t.Error("secret rewritten by a second Sync, want no change")
	}
}

// A CA due for renewal is replaced; the old CA stays in the caBundle until
// it expires, so a replica still serving the old certificate keeps
// working, and is dropped at the first renewal after it expired.
func TestRotateCA(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now()
	oldDir := t.TempDir()
	if err := f.newManager(t, f.options(t, oldDir)).Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0: %v", err)
	}
	first := f.getSecret(t)
	oldCA := pemCerts(t, first.Data[certs.KeyCACert])[0]

	// 4 years in, the 5-year CA has less than 20 months left.
	t4 := t0.Add(4 * 365 * day)
	newDir := t.TempDir()
	o := f.options(t, newDir)
	o.Now = at(t4)
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0+4y: %v", err)
	}
	s := f.getSecret(t)
	newCA := pemCerts(t, s.Data[certs.KeyCACert])[0]
	if newCA.Equal(oldCA) {
		t.Fatal("CA not replaced at t0+4y")
	}
	bundleCerts := pemCerts(t, s.Data[certs.KeyCABundle])
	if len(bundleCerts) != 2 || !bundleCerts[0].Equal(newCA) || !bundleCerts[1].Equal(oldCA) {
		t.Fatalf("secret %s holds %d certificates, want the new CA then the old one", certs.KeyCABundle, len(bundleCerts))
	}
	bundle := f.caBundle(t)
	if !bytes.Equal(bundle, s.Data[certs.KeyCABundle]) {
		t.Fatal("caBundle differs from the secret's bundle")
	}
	verify(t, bundle, newDir, f.serviceName(), t4)
	// The replica that has not synced since t0 still serves the old
	// certificate; the API server must still trust it.
	verify(t, bundle, oldDir, f.serviceName(), t0)

	// 6 years in, the old CA has expired; the serving certificate of t4
	// (1 year) is due, and its renewal drops the old CA.
	t6 := t0.Add(6 * 365 * day)
	dir := t.TempDir()
	o = f.options(t, dir)
	o.Now = at(t6)
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("Sync at t0+6y: %v", err)
	}
	s = f.getSecret(t)
	if got := pemCerts(t, s.Data[certs.KeyCABundle]); len(got) != 1 || !got[0].Equal(newCA) {
		t.Fatalf("secret %s holds %d certificates at t0+6y, want the current CA alone", certs.KeyCABundle, len(got))
	}
	if got := pemCerts(t, f.caBundle(t)); len(got) != 1 || !got[0].Equal(newCA) {
		t.Fatalf("caBundle holds %d certificates at t0+6y, want the current CA alone", len(got))
	}
	verify(t, f.caBundle(t), dir, f.serviceName(), t6)
}

// Garbage in the Secret is replaced (keeping the Secret's type and the
// keys the Manager does not own); a valid Secret someone else made is used
// as it is, even without the CA key.
func TestExistingSecret(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name       string
		typ        corev1.SecretType
		data       func(f *fixture) map[string][]byte
		wantReused bool
	}{
		{
			name: "garbage",
			typ:  corev1.SecretTypeOpaque,
			data: func(*fixture) map[string][]byte {
				return map[string][]byte{
					"tls.crt": []byte("garbage"), "tls.key": []byte("garbage"),
					certs.KeyCACert: []byte("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"),
					certs.KeyCAKey:  {0, 1, 2}, "unrelated": []byte("kept"),
				}
			},
		},
		{
			name: "empty TLS secret",
			typ:  corev1.SecretTypeTLS,
			data: func(*fixture) map[string][]byte { return map[string][]byte{"tls.crt": nil, "tls.key": nil} },
		},
		{
			name:       "provided",
			typ:        corev1.SecretTypeTLS,
			data:       func(f *fixture) map[string][]byte { return provision(t, t0, f.svc, f.ns) },
			wantReused: true,
		},
		{
			name: "provided for another service",
			typ:  corev1.SecretTypeTLS,
			data: func(f *fixture) map[string][]byte { return provision(t, t0, "other", f.ns) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			data := tc.data(f)
			pre := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: f.secret},
				Type:       tc.typ,
				Data:       data,
			}
			if err := k8s.Create(t.Context(), pre); err != nil {
				t.Fatalf("creating the secret: %v", err)
			}
			dir := t.TempDir()
			if err := f.newManager(t, f.options(t, dir)).Sync(t.Context()); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			s := f.getSecret(t)
			if s.Type != tc.typ {
				t.Errorf("secret type %s, want %s kept", s.Type, tc.typ)
			}
			if v, ok := data["unrelated"]; ok && !bytes.Equal(s.Data["unrelated"], v) {
				t.Errorf("secret key unrelated = %q, want %q kept", s.Data["unrelated"], v)
			}
			if reused := s.ResourceVersion == pre.ResourceVersion; reused != tc.wantReused {
				t.Fatalf("secret reused: %t, want %t", reused, tc.wantReused)
			}
			bundle := f.caBundle(t)
			verify(t, bundle, dir, f.serviceName(), t0)
			if !tc.wantReused {
				assertConverged(t, f, t0, dir)
				return
			}
			if !bytes.Equal(readFile(t, filepath.Join(dir, "tls.crt")), data["tls.crt"]) {
				t.Error("CertDir tls.crt differs from the provided tls.crt")
			}
			if !bytes.Equal(readFile(t, filepath.Join(dir, "tls.key")), data["tls.key"]) {
				t.Error("CertDir tls.key differs from the provided tls.key")
			}
			if got := pemCerts(t, bundle); len(got) != 1 || !got[0].Equal(pemCerts(t, data[certs.KeyCACert])[0]) {
				t.Errorf("caBundle holds %d certificates, want the provided ca.crt alone", len(got))
			}
		})
	}
}

// Ready fails until a Sync has written the files and set the caBundle; a
// Sync that cannot set the caBundle writes no files.
func TestReady(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	o := f.options(t, dir)
	o.WebhookConfigName = "missing-" + f.config
	m := f.newManager(t, o)
	var check healthz.Checker = m.Ready
	if err := check(nil); err == nil {
		t.Fatal("Ready before Sync: nil, want an error")
	}
	err := m.Sync(t.Context())
	if err == nil || !strings.Contains(err.Error(), o.WebhookConfigName) {
		t.Fatalf("Sync without the webhook configuration: %v, want an error naming %s", err, o.WebhookConfigName)
	}
	if err := check(nil); err == nil {
		t.Fatal("Ready after a failed Sync: nil, want an error")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "tls.*")); len(files) != 0 {
		t.Fatalf("files %v written before the caBundle was set, want none", files)
	}

	m = f.newManager(t, f.options(t, dir))
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := m.Ready(nil); err != nil {
		t.Fatalf("Ready after Sync: %v, want nil", err)
	}
}

// Replicas configured with different extra names (as during a rollout)
// end with one certificate covering both, instead of taking turns.
func TestExtraNamesDoNotFlap(t *testing.T) {
	f := newFixture(t)
	plain := f.newManager(t, f.options(t, t.TempDir()))
	o := f.options(t, t.TempDir())
	o.ExtraNames = []string{"127.0.0.1", "injector.example.test"}
	extra := f.newManager(t, o)
	for i, m := range []*certs.Manager{plain, extra, plain, extra} {
		if err := m.Sync(t.Context()); err != nil {
			t.Fatalf("Sync %d: %v", i, err)
		}
	}
	s := f.getSecret(t)
	for i, m := range []*certs.Manager{plain, extra} {
		if err := m.Sync(t.Context()); err != nil {
			t.Fatalf("Sync %d: %v", i, err)
		}
	}
	if got := f.getSecret(t); got.ResourceVersion != s.ResourceVersion {
		t.Fatal("secret rewritten after both replicas synced, want no change")
	}
	leaf := pemCerts(t, s.Data["tls.crt"])[0]
	for _, name := range []string{f.serviceName(), "127.0.0.1", "injector.example.test"} {
		verifyCert(t, f.caBundle(t), leaf, name, time.Now())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*certs.Options)
		want string
	}{
		{name: "no client", edit: func(o *certs.Options) { o.Client = nil }, want: "Client"},
		{name: "bad namespace", edit: func(o *certs.Options) { o.Namespace = "Not_A_Name" }, want: "Namespace"},
		{name: "bad extra name", edit: func(o *certs.Options) { o.ExtraNames = []string{"not a name"} }, want: "ExtraNames"},
		{name: "renew before lifetime", edit: func(o *certs.Options) { o.CertLifetime, o.RenewBefore = time.Hour, 2*time.Hour }, want: "RenewBefore"},
		{name: "cert outlives CA renewal", edit: func(o *certs.Options) { o.CALifetime, o.CertLifetime = 2*365*day, 2*365*day-day }, want: "CertLifetime"},
		{name: "negative interval", edit: func(o *certs.Options) { o.Interval = -time.Second }, want: "Interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := certs.Options{Client: k8s}
			tc.edit(&o)
			_, err := certs.New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := certs.New(certs.Options{Client: k8s}); err != nil {
		t.Fatalf("New with only Client: %v, want nil", err)
	}
}
