package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Manager obtains the identity of its Mode, writes it to the identity
// directory and keeps it fresh. It is the sidecar's Identity: Transport,
// NTokenSource, Ready and Run, plus Init for a one-shot run and
// CertificateChainPEM for GET /svccert. All methods are safe for
// concurrent use.
type Manager struct {
	opts  Options // with defaults
	log   logr.Logger
	clock tokens.Clock

	// pool is Transport's: keep-alive connections, a new pool with every
	// rotation. own carries the Manager's own calls without keep-alive,
	// so each one presents the current certificate; ownNToken (key-file
	// mode) carries them with the N-token alone, no certificate.
	pool      *rotatingTransport
	api       http.RoundTripper
	own       http.RoundTripper
	ownNToken http.RoundTripper
	skew      *tokens.ClockSkew

	signer        *tokens.NTokenSigner // key-file mode
	serviceKey    crypto.Signer        // key-file mode
	serviceKeyPEM []byte               // key-file mode, PKCS#8
	ntoken        atomic.Pointer[ztsNToken]

	cur atomic.Pointer[credential]

	// work serialises renewals (Run's loop and Init).
	work sync.Mutex
	// Fields below are used under work only.
	identityDue time.Time
	written     map[string][]byte // file name -> content last written or adopted
	files       filesState        // files mode
	keyGen      uint64
	// startKey is a key adopted from the identity directory without a
	// usable certificate; copper-argos registers with it (key and keyPEM
	// only).
	startKey *credential

	// mu guards the status fields below, read by Ready and Status.
	mu            sync.Mutex
	running       bool
	renewals      int
	failures      int // consecutive
	failuresTotal int
	lastErr       error
	roles         []*roleCert
}

// New validates opts (see Options.Validate) and returns a Manager. In
// copper-argos and key-file modes it adopts a certificate left in the
// identity directory by an earlier run (an init container, a restarted
// sidecar) when it is still valid and matches the key, so the Manager is
// ready at once; otherwise Run or Init gets one from ZTS.
func New(opts Options) (*Manager, error) {
	ld, err := opts.validate()
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m := &Manager{
		opts:    opts,
		log:     opts.Logger.WithValues("mode", string(opts.Mode)),
		clock:   opts.Clock,
		written: map[string][]byte{},
		skew:    opts.Skew,
	}
	if m.skew == nil {
		m.skew = tokens.NewClockSkew(m.log)
	}
	m.pool = newRotatingTransport(func() *http.Transport {
		return newBaseTransport(ld.roots, m.clientCertificate, opts.Timeout)
	}, opts.Timeout)
	own := newBaseTransport(ld.roots, m.clientCertificate, opts.Timeout)
	own.DisableKeepAlives = true
	m.api, m.own = m.pool, own
	for _, t := range opts.RoleCerts {
		m.roles = append(m.roles, &roleCert{target: t, file: RoleCertFileName(t)})
	}

	if opts.Mode == ModeKeyFile {
		signer, err := tokens.NewNTokenSigner(tokens.NTokenOptions{
			Domain: opts.Domain, Service: opts.Service, KeyVersion: opts.KeyVersion,
			KeyPEM: ld.keyPEM, Clock: opts.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_KEY_FILE with ATHENZ_DOMAIN, ATHENZ_SERVICE and ATHENZ_KEY_VERSION: %w", err)
		}
		if _, _, err := signer.Token(); err != nil {
			return nil, fmt.Errorf("ATHENZ_KEY_FILE: signing an n-token: %w", err)
		}
		key, _ := tokens.ParsePrivateKeyPEM(ld.keyPEM) // checked by validate
		keyPEM, err := encodeKey(key)
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
		}
		m.signer, m.serviceKey, m.serviceKeyPEM = signer, key, keyPEM
		m.api = ntokenTransport{base: m.pool, src: signer}
		m.own = ntokenTransport{base: own, src: signer}
		// The certificate of the service key is asked for with the
		// N-token alone: ZTS then issues it as a first certificate,
		// which its IP restriction of certificate refresh
		// (athenz.zts.cert_refresh_ip_fname) does not cover.
		noCert := newBaseTransport(ld.roots, nil, opts.Timeout)
		noCert.DisableKeepAlives = true
		m.ownNToken = ntokenTransport{base: noCert, src: signer}
	}
	if opts.WrapTransport != nil {
		m.own = opts.WrapTransport(m.own)
		if m.ownNToken != nil {
			m.ownNToken = opts.WrapTransport(m.ownNToken)
		}
	}

	removeStaleTemps(opts.IdentityDir)
	if opts.Mode != ModeFiles {
		m.adopt()
	}
	return m, nil
}

// Transport carries calls to ZTS authenticated as this identity: the
// current certificate, read at every TLS handshake, and in key-file mode
// also an N-token. Every rotation starts a new connection pool, so no
// connection goes on presenting the previous certificate.
func (m *Manager) Transport() http.RoundTripper { return m.api }

// ClockSkew returns the measurement of ZTS's clock against the node's
// that the Manager uses and feeds (Options.Skew, or its own).
func (m *Manager) ClockSkew() *tokens.ClockSkew { return m.skew }

// NTokenSource returns the source of the identity's N-tokens: the local
// signer in key-file mode, ZTS's N-token in copper-argos mode with
// Options.NToken, else nil.
func (m *Manager) NTokenSource() NTokenSource {
	switch {
	case m.signer != nil:
		return m.signer
	case m.opts.Mode == ModeCopperArgos && m.opts.NToken:
		return m.ztsNTokenSource()
	}
	return nil
}

func (m *Manager) ztsNTokenSource() ztsNTokenSource {
	return ztsNTokenSource{current: &m.ntoken, clock: m.clock}
}

// CertificateChainPEM returns the current certificate chain (leaf first)
// as written to service.cert.pem, or nil before the first certificate.
func (m *Manager) CertificateChainPEM() []byte {
	c := m.cur.Load()
	if c == nil {
		return nil
	}
	return bytes.Clone(c.chainPEM)
}

// ClientCertificate returns the identity certificate with its key, for
// a TLS client that presents the Pod's identity to a peer other than ZTS
// (the proxy's TLS origination), or why there is none valid now. The
// pointer changes with every new certificate, so a caller that keeps
// connections can tell when to start new ones.
func (m *Manager) ClientCertificate() (*tls.Certificate, error) {
	for range 2 {
		if c := m.cur.Load(); c.validAt(m.clock.Now()) {
			return c.tls, nil
		}
		if err := m.CertificateError(); err != nil {
			return nil, err
		}
		// A certificate came in between: take it.
	}
	return nil, errors.New("no identity certificate valid now")
}

// CertificateError returns nil when an identity certificate valid now is
// in place, else why not, with the last attempt's error. It is cheap.
func (m *Manager) CertificateError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.certErrorLocked(m.cur.Load(), m.clock.Now())
}

func (m *Manager) certErrorLocked(c *credential, now time.Time) error {
	last := ""
	if m.lastErr != nil {
		last = fmt.Sprintf(" (attempt %d failed: %v)", m.failures, m.lastErr)
	}
	switch {
	case m.opts.Mode == ModeKeyFile && m.opts.KeyFileCert == KeyFileCertOff:
		return errors.New("no certificate: ATHENZ_KEY_FILE_CERT=off")
	case c == nil:
		return fmt.Errorf("no identity certificate yet%s", last)
	case now.Before(c.valid.notBefore):
		return fmt.Errorf("identity certificate is not valid before %s%s", c.valid.notBefore.UTC().Format(time.RFC3339), last)
	case !now.Before(c.valid.notAfter):
		return fmt.Errorf("identity certificate expired at %s%s", c.valid.notAfter.UTC().Format(time.RFC3339), last)
	}
	return nil
}

// Ready returns nil when every credential the Manager was configured for
// is valid now, else why not, with the last error. It is cheap.
//
//   - The identity certificate, except in key-file mode with
//     KeyFileCertOff (none is asked for) or KeyFileCertOptional, where
//     ZTS refusing the certificate (an answer such as 403 for an IP it
//     does not issue certificates to) is enough: the service key's
//     N-tokens authenticate to ZTS. A refusal of the N-token itself (401),
//     or no answer yet, is not.
//   - In copper-argos mode with NToken, ZTS's N-token.
//   - Every role certificate, for the current key.
func (m *Manager) Ready() error {
	c := m.cur.Load()
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.certErrorLocked(c, now); err != nil && !m.certOptionalLocked() {
		return err
	}
	if m.opts.Mode == ModeCopperArgos && m.opts.NToken {
		if _, _, err := m.ztsNTokenSource().Token(); err != nil {
			last := ""
			if m.lastErr != nil {
				last = fmt.Sprintf(" (attempt %d failed: %v)", m.failures, m.lastErr)
			}
			return fmt.Errorf("%w%s", err, last)
		}
	}
	for _, r := range m.roles {
		var keyGen uint64
		if c != nil {
			keyGen = c.keyGen
		}
		if err := r.ready(now, keyGen); err != nil {
			return err
		}
	}
	return nil
}

// certOptionalLocked reports whether readiness can do without the
// identity certificate now (see Ready).
func (m *Manager) certOptionalLocked() bool {
	if m.opts.Mode != ModeKeyFile || len(m.roles) > 0 {
		return false
	}
	switch m.opts.KeyFileCert {
	case KeyFileCertOff:
		return true
	case KeyFileCertOptional:
		return certRefused(m.lastErr)
	}
	return false
}

// Status is a snapshot of the Manager's state, for logs and metrics.
type Status struct {
	Mode Mode
	// Serial (hex), NotBefore and NotAfter describe the current
	// certificate; zero before the first.
	Serial              string
	NotBefore, NotAfter time.Time
	// ExpiresAt is NotAfter on the node's clock: NotAfter less ZTS's
	// clock offset as measured when the certificate came.
	ExpiresAt time.Time
	// InstanceID is the copper-argos instance id.
	InstanceID string
	// Renewals counts certificates obtained (files mode: loaded) since
	// start.
	Renewals int
	// Failures counts consecutive failed attempts; LastError is the last
	// one's error, nil after a success.
	Failures  int
	LastError error
	// FailuresTotal counts failed attempts since start.
	FailuresTotal int
	// RoleCerts is the state of each role certificate.
	RoleCerts []RoleCertStatus
}

// RoleCertStatus is the state of one role certificate.
type RoleCertStatus struct {
	Target    tokens.Target
	File      string // path in the identity directory
	Serial    string // "" before the first
	NotAfter  time.Time
	Failures  int
	LastError error
}

// Status returns a snapshot of the Manager's state.
func (m *Manager) Status() Status {
	c := m.cur.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{Mode: m.opts.Mode, Renewals: m.renewals, Failures: m.failures, LastError: m.lastErr, FailuresTotal: m.failuresTotal}
	if c != nil {
		s.Serial = c.leaf().SerialNumber.Text(16)
		s.NotBefore, s.NotAfter, s.ExpiresAt = c.leaf().NotBefore, c.leaf().NotAfter, c.valid.notAfter
		s.InstanceID = c.instanceID
	}
	for _, r := range m.roles {
		rs := RoleCertStatus{Target: r.target, File: filepath.Join(m.opts.IdentityDir, r.file),
			Failures: r.failures, LastError: r.lastErr}
		if r.cert != nil {
			rs.Serial, rs.NotAfter = r.cert.SerialNumber.Text(16), r.valid.notAfter
		}
		s.RoleCerts = append(s.RoleCerts, rs)
	}
	return s
}

// Run keeps the identity fresh until ctx ends: it obtains the first
// certificate (retrying with backoff while ZTS cannot be reached or
// refuses), renews it after Options.RefreshFraction of its lifetime,
// fetches and renews the role certificates, and in files mode reloads
// changed files. A failed renewal leaves the current files and
// certificate in use and is retried. Run returns nil when ctx ends; it
// returns an error only when called while another Run is running.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("identity: Run is already running")
	}
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()
	for {
		next := m.step(ctx)
		if !m.sleepUntil(ctx, next) {
			return nil
		}
	}
}

// Init obtains the identity and the role certificates once, writes them,
// and returns (sidecar --mode=init). It retries failures that may pass (ZTS
// unreachable, 5xx, timeouts) with backoff until ctx ends, so give ctx a
// deadline; an answer that will not change (a 4xx: attestation refused,
// role not granted) returns at once. A valid identity already in the
// directory (see New) is kept.
func (m *Manager) Init(ctx context.Context) error {
	for {
		next := m.step(ctx)
		if m.Ready() == nil {
			return nil
		}
		if err := m.permanentError(); err != nil {
			return err
		}
		if !m.sleepUntil(ctx, next) {
			return fmt.Errorf("giving up on the identity: %w; %v", ctx.Err(), m.Ready())
		}
	}
}

// permanentError returns the first current error that retrying will not
// cure.
func (m *Manager) permanentError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastErr != nil && permanent(m.lastErr) {
		return m.lastErr
	}
	for _, r := range m.roles {
		if r.lastErr != nil && permanent(r.lastErr) {
			return fmt.Errorf("role certificate %s: %w", r.target, r.lastErr)
		}
	}
	return nil
}

// step does the work that is due and returns when more will be.
func (m *Manager) step(ctx context.Context) time.Time {
	m.work.Lock()
	defer m.work.Unlock()
	if m.opts.Mode == ModeKeyFile && m.opts.KeyFileCert == KeyFileCertOff {
		return m.clock.Now().Add(24 * time.Hour) // nothing to keep but the key
	}
	if !m.clock.Now().Before(m.identityDue) {
		m.renewIdentity(ctx)
	}
	next := m.identityDue
	cur := m.cur.Load()
	if cur == nil {
		return next
	}
	for _, r := range m.roles {
		if ctx.Err() != nil {
			return next
		}
		if r.due(m.clock.Now(), cur.keyGen) {
			m.renewRole(ctx, cur, r)
		}
		if d := r.nextDue(); d.Before(next) {
			next = d
		}
	}
	return next
}

// renewIdentity runs one attempt of the mode and schedules the next.
func (m *Manager) renewIdentity(ctx context.Context) {
	var (
		c       *credential
		changed bool
		err     error
	)
	switch m.opts.Mode {
	case ModeCopperArgos:
		c, err = m.copperArgos(ctx)
		changed = err == nil
	case ModeKeyFile:
		c, err = m.keyRefresh(ctx)
		changed = err == nil
	case ModeFiles:
		c, changed, err = m.reloadFiles()
	}
	now := m.clock.Now()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down; not a failure
		}
		m.mu.Lock()
		m.failures++
		m.failuresTotal++
		m.lastErr = err
		attempt := m.failures
		m.mu.Unlock()
		delay := m.backoff(attempt)
		if m.opts.Mode == ModeFiles {
			delay = m.opts.PollInterval
		} else {
			delay = max(delay, m.patientRetry(attempt, now))
		}
		m.identityDue = now.Add(delay)
		m.log.Error(err, "identity certificate attempt failed, retrying", "attempt", attempt, "retryin", delay.String())
		return
	}
	switch m.opts.Mode {
	case ModeFiles:
		m.identityDue = now.Add(m.opts.PollInterval)
	default:
		m.identityDue = renewAt(c.obtained, c.valid, m.opts.RefreshFraction, rand.Float64())
		// ZTS hands out its N-token only with a certificate: renew the
		// certificate when the N-token is due, if that comes first.
		if nt := m.ntoken.Load(); m.opts.NToken && nt != nil && nt.renewAt.Before(m.identityDue) {
			m.identityDue = nt.renewAt
		}
	}
	if !changed {
		return
	}
	m.mu.Lock()
	m.failures, m.lastErr = 0, nil
	m.renewals++
	m.mu.Unlock()
	kv := []any{"serial", c.leaf().SerialNumber.Text(16), "notafter", c.leaf().NotAfter.UTC().Format(time.RFC3339)}
	if nt := m.ntoken.Load(); m.opts.NToken && nt != nil {
		kv = append(kv, "ntokenexpiry", nt.expiry.UTC().Format(time.RFC3339))
	}
	if m.opts.Mode != ModeFiles {
		kv = append(kv, "renewat", m.identityDue.UTC().Format(time.RFC3339))
	}
	m.log.Info("identity certificate in place", kv...)
}

// install writes c to the identity directory and makes it current. Files
// are written first: what the Manager presents is what the app reads. When
// the key changed, the key and the certificate are replaced together
// (writeFilesAtomic): both are written and synced before either is
// renamed into place, key first.
func (m *Manager) install(c *credential) error {
	prev := m.cur.Load()
	if prev == nil || !bytes.Equal(prev.keyPEM, c.keyPEM) {
		m.keyGen++
	}
	c.keyGen = m.keyGen
	if err := m.write(fileWrite{Name: KeyFileName, Data: c.keyPEM, Perm: m.opts.KeyFileMode}, fileWrite{Name: CertFileName, Data: c.chainPEM, Perm: CertFileMode}); err != nil {
		return err
	}
	if c.caPEM != nil {
		if err := m.write(fileWrite{Name: CAFileName, Data: c.caPEM, Perm: CertFileMode}); err != nil {
			// The certificate and key are in place; the CA bundle is
			// rarely new. Log and go on.
			m.log.Error(err, "writing the CA bundle")
		}
	}
	m.cur.Store(c)
	// Connections made with the previous certificate would keep it.
	m.pool.rotate()
	return nil
}

// write replaces the files of the identity directory that do not already
// have their content, together (writeFilesAtomic).
func (m *Manager) write(files ...fileWrite) error {
	var changed []fileWrite
	for _, f := range files {
		if !bytes.Equal(m.written[f.Name], f.Data) {
			changed = append(changed, f)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	err := writeFilesAtomic(m.opts.IdentityDir, changed...)
	for _, f := range changed {
		if err == nil {
			m.written[f.Name] = bytes.Clone(f.Data)
			continue
		}
		// A failed rename leaves the files before it new: remember what
		// is on disk.
		if b, rerr := os.ReadFile(filepath.Join(m.opts.IdentityDir, f.Name)); rerr == nil {
			m.written[f.Name] = b
		}
	}
	return err
}

// clientCertificate is the TLS client certificate callback: the current
// certificate while it is valid, else none (an expired certificate would
// fail the handshake; without one, an N-token may still authenticate).
func (m *Manager) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := m.cur.Load()
	if c == nil || !c.validAt(m.clock.Now()) {
		return &tls.Certificate{}, nil
	}
	return c.tls, nil
}

// backoff is the wait before attempt+1: exponential from RetryMin,
// capped at RetryMax, with jitter between half and all of it.
func (m *Manager) backoff(attempt int) time.Duration {
	d := m.opts.RetryMin
	for i := 1; i < attempt && d < m.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.opts.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Retries of a renewal while the identity is still valid
// (docs/design/2026-12-02-fleet-recovery.md): after QuickRetries, an
// attempt waits RetryFraction (±10%) of the time the identity has left
// less 2 RetryMax, at most RetryPatience. A renewal falls due with hours
// left (a third of a day's certificate), so a ZTS outage costs a sidecar a
// few calls, and
// when ZTS is back the renewals that failed come back spread over up to an
// hour rather than within RetryMax of each other.
const (
	QuickRetries  = 6
	RetryFraction = 0.8
	RetryPatience = time.Hour
)

// patientRetry is the wait before attempt+1 while the current identity is
// valid: see QuickRetries. Zero when it is not (a first certificate, an
// expired one: the backoff alone applies).
func (m *Manager) patientRetry(attempt int, now time.Time) time.Duration {
	c := m.cur.Load()
	if attempt <= QuickRetries || c == nil || !c.validAt(now) {
		return 0
	}
	until := c.valid.notAfter
	if nt := m.ntoken.Load(); m.opts.NToken && nt != nil && nt.expiry.Before(until) {
		until = nt.expiry
	}
	// The last 2 RetryMax are left to the backoff: an identity that close
	// to expiry is retried at least every RetryMax.
	left := until.Sub(now) - 2*m.opts.RetryMax
	if left <= 0 {
		return 0
	}
	return min(time.Duration(RetryFraction*(0.9+0.2*rand.Float64())*float64(left)), RetryPatience)
}

// sleepUntil waits until t on the Manager's clock and reports whether ctx
// is still live.
func (m *Manager) sleepUntil(ctx context.Context, t time.Time) bool {
	d := t.Sub(m.clock.Now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	ch := make(chan struct{})
	timer := m.clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-ch:
		return true
	}
}
