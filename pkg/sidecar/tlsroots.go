package sidecar

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
)

// The named sources of ATHENZ_PROXY_TLS_CA: the CAs the proxy trusts for
// upstreams' certificates when it originates TLS.
const (
	// CASystem is the system's root CAs (the image's CA certificates).
	CASystem = "system"
	// CAZTS is ATHENZ_ZTS_CA_FILE: the CAs of ZTS's own certificate, which
	// often sign the platform's other services too.
	CAZTS = "zts"
	// CAIdentity is ca.cert.pem of the identity directory: the CA bundle
	// ZTS sent with the Pod's certificate, which signs Athenz service
	// certificates, so an upstream serving with its own Athenz identity
	// is trusted.
	CAIdentity = "identity"
)

// DefaultProxyTLSCA is ATHENZ_PROXY_TLS_CA when unset.
const DefaultProxyTLSCA = CASystem + "," + CAZTS + "," + CAIdentity

// rootsCheckPeriod is how often, at most, the proxy looks for changed CA
// files (a request past it stats them).
const rootsCheckPeriod = 10 * time.Second

// parseCAList parses ATHENZ_PROXY_TLS_CA.
func parseCAList(list string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == CASystem || item == CAZTS || item == CAIdentity || filepath.IsAbs(item):
		case item == "":
			return nil, fmt.Errorf("empty entry in %q", truncate(list))
		default:
			return nil, fmt.Errorf("entry %q: want %s, %s, %s or the absolute path of a PEM bundle", truncate(item), CASystem, CAZTS, CAIdentity)
		}
		if !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out, nil
}

// caFile is one PEM bundle of the roots, with what it held when last read.
type caFile struct {
	path     string
	optional bool // ca.cert.pem appears with the first certificate
	mod      time.Time
	size     int64
	pem      []byte
}

// tlsRoots is the pool of CAs that upstream certificates are verified
// with: ATHENZ_PROXY_TLS_CA's sources, files read again when they change
// (checked at most every rootsCheckPeriod). Each change makes a new pool
// with a new generation number, so connection pools made with the old
// one are replaced.
type tlsRoots struct {
	desc   string // the setting's value, for messages
	system bool
	fixed  []byte // PEM that does not change (dev mode's fake CA)

	cur       atomic.Pointer[rootsState]
	lastCheck atomic.Int64 // unix nanoseconds
	mu        sync.Mutex   // guards files and reloads
	files     []caFile
}

type rootsState struct {
	pool *x509.CertPool
	gen  uint64
}

// newTLSRoots builds the roots of cfg.ProxyTLSCA. devCA, when set, is the
// CA that dev mode's fake ZTS uses, standing for CAZTS. A bundle file
// named in the setting must exist and hold a certificate; ca.cert.pem of
// the identity directory may not exist yet.
func newTLSRoots(cfg Config, devCA []byte) (*tlsRoots, error) {
	sources := cfg.withDefaults().ProxyTLSCA
	r := &tlsRoots{desc: strings.Join(sources, ",")}
	for _, s := range sources {
		switch s {
		case CASystem:
			r.system = true
		case CAZTS:
			switch {
			case devCA != nil:
				r.fixed = append(r.fixed, devCA...)
			case cfg.ZTSCAFile != "":
				r.files = append(r.files, caFile{path: cfg.ZTSCAFile})
			}
		case CAIdentity:
			r.files = append(r.files, caFile{path: filepath.Join(cfg.identityDir(), identity.CAFileName), optional: true})
		default:
			r.files = append(r.files, caFile{path: s})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.reloadLocked(); err != nil {
		return nil, fmt.Errorf("ATHENZ_PROXY_TLS_CA=%s: %w", r.desc, err)
	}
	// The pool is built at the first TLS-originated call: the system's
	// CAs, parsed, are about 4 MB that a sidecar whose app never asks for
	// TLS origination need not hold (idle RSS, issue 15). The files were
	// checked above.
	r.lastCheck.Store(time.Now().UnixNano())
	return r, nil
}

// current returns the pool and its generation, reading the files again
// when rootsCheckPeriod has passed since the last look and they changed.
// A file that became unreadable or empty keeps its last content.
func (r *tlsRoots) current() *rootsState {
	if r.cur.Load() == nil {
		r.mu.Lock()
		if r.cur.Load() == nil {
			if err := r.buildLocked(1); err != nil {
				// The system's CAs could not be read: the pool has the
				// others, and the next change of a file tries again.
				r.cur.Store(&rootsState{pool: r.poolLocked(nil), gen: 1})
			}
		}
		r.mu.Unlock()
	}
	now := time.Now().UnixNano()
	last := r.lastCheck.Load()
	if now-last < int64(rootsCheckPeriod) || !r.lastCheck.CompareAndSwap(last, now) {
		return r.cur.Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed, _ := r.reloadLocked()
	if changed {
		_ = r.buildLocked(r.cur.Load().gen + 1) // an error keeps the pool in use
	}
	return r.cur.Load()
}

// reloadLocked reads the files that changed since the last read and
// reports whether any did. Errors are for the first load.
func (r *tlsRoots) reloadLocked() (changed bool, err error) {
	var errs []error
	for i := range r.files {
		f := &r.files[i]
		fi, serr := os.Stat(f.path)
		if serr != nil {
			if !f.optional && f.pem == nil {
				errs = append(errs, serr)
			}
			continue
		}
		if f.pem != nil && fi.ModTime().Equal(f.mod) && fi.Size() == f.size {
			continue
		}
		b, rerr := os.ReadFile(f.path)
		if rerr == nil && !x509.NewCertPool().AppendCertsFromPEM(b) {
			rerr = fmt.Errorf("%s: no PEM certificate found", f.path)
		}
		if rerr != nil {
			if !f.optional && f.pem == nil {
				errs = append(errs, rerr)
			}
			continue
		}
		f.mod, f.size, f.pem, changed = fi.ModTime(), fi.Size(), b, true
	}
	return changed, errors.Join(errs...)
}

func (r *tlsRoots) buildLocked(gen uint64) error {
	var sys *x509.CertPool
	if r.system {
		var err error
		if sys, err = x509.SystemCertPool(); err != nil {
			return fmt.Errorf("reading the system's CAs: %w", err)
		}
	}
	r.cur.Store(&rootsState{pool: r.poolLocked(sys), gen: gen})
	return nil
}

// poolLocked adds the fixed and file CAs to base (nil: an empty pool).
func (r *tlsRoots) poolLocked(base *x509.CertPool) *x509.CertPool {
	if base == nil {
		base = x509.NewCertPool()
	}
	base.AppendCertsFromPEM(r.fixed)
	for _, f := range r.files {
		base.AppendCertsFromPEM(f.pem)
	}
	return base
}
