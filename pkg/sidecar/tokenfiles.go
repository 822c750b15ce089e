package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile"
	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// tokenFilesPoll is how often the token files are compared with the
// cache, which refreshes their tokens ahead of expiry on its schedule; a
// new token reaches its file within this.
const tokenFilesPoll = time.Second

// TokenFile is one token of ATHENZ_TOKEN_FILES (tokens.TokenFile).
type TokenFile = tokens.TokenFile

// tokenFileMeta is the JSON companion of a token file, written right
// after it: an app can watch it for a new token, and read the expiry
// without parsing the token.
type tokenFileMeta struct {
	Type   string `json:"type"`
	Domain string `json:"domain"`
	Role   string `json:"role"`
	// ExpiryTime is when the token expires, in unix seconds, on the node's
	// clock (as the API's expiryTime).
	ExpiryTime int64 `json:"expiry_time"`
	// UpdatedTime is when the file was written, in unix seconds.
	UpdatedTime int64 `json:"updated_time"`
}

// tokenFiles keeps the tokens of ATHENZ_TOKEN_FILES as files: it writes a
// file whenever the cache (where the tokens are pinned, and refreshed
// ahead of expiry on the cache's schedule) holds a newer token than the
// file, atomically, token first and its JSON companion right after.
// Files are never removed: after a sidecar restart apps keep reading the
// last tokens, valid until they expire, while the new process fetches
// new ones.
type tokenFiles struct {
	identityDir string
	perm        fs.FileMode
	cache       *tokens.Cache
	clock       tokens.Clock
	log         logr.Logger
	files       []*tokenFileState
	// syncMu serialises sync (the poll and the prefetch), so an older
	// token never replaces a newer one.
	syncMu sync.Mutex
}

// tokenFileState is one file and what was last written to it. Fields
// after mu are guarded by it.
type tokenFileState struct {
	spec TokenFile
	key  tokens.Key

	mu      sync.Mutex
	value   string    // the token written; "" before the first
	expiry  time.Time // of the token written
	lastErr error     // of the last write
}

// newTokenFiles prepares the directories of files under identityDir and
// removes what a process stopped half-way through a write left there.
func newTokenFiles(identityDir string, files []TokenFile, perm fs.FileMode, cache *tokens.Cache, clock tokens.Clock, log logr.Logger) (*tokenFiles, error) {
	tf := &tokenFiles{identityDir: identityDir, perm: perm, cache: cache, clock: clock, log: log}
	for _, f := range files {
		k, err := f.Key()
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_TOKEN_FILES %s: %w", f, err)
		}
		dir := filepath.Dir(filepath.Join(identityDir, f.Path()))
		// Directories are listable by everyone: the names say which roles
		// the Pod reads, not the tokens, which have the files' mode.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("ATHENZ_TOKEN_FILES %s: %w", f, err)
		}
		atomicfile.RemoveTemps(dir, "."+f.Kind.String())
		tf.files = append(tf.files, &tokenFileState{spec: f, key: k})
	}
	return tf, nil
}

// run writes new tokens to their files every tokenFilesPoll until ctx
// ends. (The first write comes from the prefetch, which syncs once it has
// loaded the tokens, before it reports them loaded.)
func (tf *tokenFiles) run(ctx context.Context) {
	t := time.NewTicker(tokenFilesPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tf.sync()
		}
	}
}

// sync writes every file whose token in the cache is newer than the one
// written.
func (tf *tokenFiles) sync() {
	tf.syncMu.Lock()
	defer tf.syncMu.Unlock()
	now := tf.clock.Now()
	for _, st := range tf.files {
		tok, ok := tf.cache.Lookup(st.key)
		st.mu.Lock()
		stale := ok && tok.Value != st.value && tok.Expiry.After(now)
		st.mu.Unlock()
		if stale {
			tf.write(st, tok)
		}
	}
}

// write writes tok to st's file, then the JSON companion.
func (tf *tokenFiles) write(st *tokenFileState, tok tokens.Token) {
	path := filepath.Join(tf.identityDir, st.spec.Path())
	meta, err := json.Marshal(tokenFileMeta{
		Type: st.spec.Kind.String(), Domain: st.spec.Target.Domain, Role: st.spec.Target.Role,
		ExpiryTime: tok.Expiry.Unix(), UpdatedTime: tf.clock.Now().Unix(),
	})
	if err == nil {
		name := filepath.Base(path)
		err = atomicfile.Write(filepath.Dir(path),
			atomicfile.File{Name: name, Data: []byte(tok.Value), Perm: tf.perm},
			atomicfile.File{Name: name + ".json", Data: append(meta, '\n'), Perm: tf.perm})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		if st.lastErr == nil || st.lastErr.Error() != err.Error() {
			tf.log.Error(err, "writing token file", "file", path)
		}
		st.lastErr = err
		return
	}
	st.value, st.expiry, st.lastErr = tok.Value, tok.Expiry, nil
	tf.log.V(1).Info("token file written", "file", path, "expiry", tok.Expiry.UTC().Format(time.RFC3339))
}

// check returns nil when every file holds a token valid now (with more
// than tokens.MinServeRemaining left), else which do not and why.
func (tf *tokenFiles) check() error {
	if tf == nil {
		return nil
	}
	now := tf.clock.Now()
	var bad []string
	for _, st := range tf.files {
		st.mu.Lock()
		switch {
		case st.lastErr != nil:
			bad = append(bad, fmt.Sprintf("%s (%v)", st.spec.Path(), st.lastErr))
		case st.value == "":
			bad = append(bad, st.spec.Path()+" (not written yet)")
		case st.expiry.Sub(now) <= tokens.MinServeRemaining:
			bad = append(bad, st.spec.Path()+" (its token expired, refreshes failing)")
		}
		st.mu.Unlock()
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d token files not valid: %s", len(bad), len(tf.files), strings.Join(bad, "; "))
}

// writeOnce fetches every token with fetch and writes its file, for
// --mode=init; it returns the failures joined.
func (tf *tokenFiles) writeOnce(ctx context.Context, fetch tokens.FetchFunc) error {
	var errs []error
	for _, st := range tf.files {
		tok, err := fetch(ctx, st.key)
		if err == nil {
			tf.write(st, tok)
			st.mu.Lock()
			err = st.lastErr
			st.mu.Unlock()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("token file %s: %w", st.spec, err))
		}
	}
	return errors.Join(errs...)
}

// tokenFileMode is the mode of the token files: the key's
// (ATHENZ_IDENTITY_KEY_MODE), since a token is as much a credential.
func (c Config) tokenFileMode() fs.FileMode {
	if c.Certificate.KeyFileMode == 0 {
		return identity.DefaultKeyFileMode
	}
	return c.Certificate.KeyFileMode
}
