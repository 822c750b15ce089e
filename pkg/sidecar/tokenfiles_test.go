package sidecar

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile/atomicfiletest"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// tokenShape is a whole role or access token: a reader that sees less
// saw a partial file.
var tokenShape = regexp.MustCompile(`^(v=Z1;d=prov;r=reader;[^;]+(;[a-z]+=[^;]*)*;s=[A-Za-z0-9._-]+|[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$`)

// startFileReader reads token files and their JSON companions in a loop
// and records every read that is not a whole token or whole JSON, or a
// file that is not there. seen gets the distinct tokens read; read it
// after Check.
func startFileReader(t *testing.T, seen map[string]bool, paths ...string) *atomicfiletest.Reader {
	t.Helper()
	return atomicfiletest.StartReader(t, func() string {
		for _, p := range paths {
			tok, err1 := os.ReadFile(p)
			meta, err2 := os.ReadFile(p + ".json")
			var m tokenFileMeta
			switch {
			case err1 != nil || err2 != nil:
				return fmt.Sprintf("%s: %v %v", filepath.Base(p), err1, err2)
			case !tokenShape.Match(tok):
				return fmt.Sprintf("%s: not a whole token: %q", filepath.Base(p), tok)
			case json.Unmarshal(meta, &m) != nil || m.ExpiryTime == 0:
				return fmt.Sprintf("%s.json: not whole: %q", filepath.Base(p), meta)
			}
			seen[string(tok)] = true
		}
		return ""
	})
}

// readTokenFile reads a token file's JSON companion, then the token:
// the token is written first, so it is at least as new as the JSON.
func readTokenFile(t *testing.T, path string) (string, tokenFileMeta) {
	t.Helper()
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m tokenFileMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s.json: %v in %q", path, err, b)
	}
	return string(tok), m
}

// TestTokenFiles (acceptance): the token files exist before the sidecar
// reports ready, hold the API's tokens with the files' mode, and are
// replaced ahead of expiry on the cache's schedule, atomically: a reader
// loop never sees a partial file, and always the token and its JSON.
func TestTokenFiles(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now, RoleTokenDefault: time.Hour, AccessTokenDefault: time.Hour})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	// Slow enough that /readyz is seen before the tokens come.
	zts.SetLatency(ztsfake.EndpointRoleToken, 300*time.Millisecond)
	env, pub := keyFileEnv(t, zts)
	env = append([]string{"ATHENZ_TOKEN_FILES=roletoken:prov:role.reader,accesstoken:prov:role.reader", "ATHENZ_IDENTITY_KEY_MODE=0644"}, env...)
	f := startWithEnvNoWait(t, zts, env, pub, func(c *Config) { c.Clock = clock })
	dir := f.srv.cfg.IdentityDir
	role, access := filepath.Join(dir, "tokens/prov/reader.roletoken"), filepath.Join(dir, "tokens/prov/reader.accesstoken")

	notReady, named := 0, false
	for {
		r := do(t, nil, "GET", f.api+"/readyz", "", "", nil)
		_, err1 := os.Stat(role)
		_, err2 := os.Stat(access)
		if r.status == 200 {
			if err1 != nil || err2 != nil {
				t.Fatalf("/readyz is 200 but the token files are not there: %v %v", err1, err2)
			}
			break
		}
		if notReady++; notReady > 500 {
			t.Fatalf("/readyz = %d %s after 10 s", r.status, r.body)
		}
		named = named || strings.Contains(string(r.body), "token file tokens/prov/reader.roletoken")
		time.Sleep(20 * time.Millisecond)
	}
	if !named {
		t.Errorf("/readyz never named the token file it waited for")
	}
	t.Logf("/readyz answered 503 %d times, then 200 with the files in place", notReady)
	zts.SetLatency(ztsfake.EndpointRoleToken, 0)

	tok, meta := readTokenFile(t, role)
	var api struct {
		Token      string `json:"token"`
		ExpiryTime int64  `json:"expiryTime"`
	}
	do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil).json(t, &api)
	if tok != api.Token || meta.ExpiryTime != api.ExpiryTime || meta.Type != "roletoken" || meta.Domain != "prov" || meta.Role != "reader" {
		t.Errorf("role token file %q %+v, want the token /roletoken answers (%q, expiry %d)", tok, meta, api.Token, api.ExpiryTime)
	}
	if n := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader"); n > 1 {
		t.Errorf("role token calls = %d, want 1: the file and the API share the cache entry", n)
	}
	if at, _ := readTokenFile(t, access); strings.Count(at, ".") != 2 {
		t.Errorf("access token file = %q, want a JWT", at)
	}
	for _, p := range []string{role, role + ".json", access, access + ".json"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != fs.FileMode(0o644) {
			t.Errorf("%s: mode %v (%v), want 0644 (ATHENZ_IDENTITY_KEY_MODE)", p, fi.Mode().Perm(), err)
		}
	}

	// Three refreshes, on the cache's schedule (about 85 to 95% of the way
	// to the last quarter of the hour), while a reader loop reads.
	seen := map[string]bool{}
	reader := startFileReader(t, seen, role, access)
	settle(t, f, clock)
	for i := range 3 {
		before, beforeMeta := readTokenFile(t, role)
		start := clock.Now()
		for {
			clock.Advance(time.Minute)
			settle(t, f, clock)
			// The file catches up with the cache within a poll.
			if tok, ok := f.srv.cache.Lookup(mustRoleKey(t)); ok && tok.Value != before {
				waitFor(t, "the role token file to catch up with the cache", func() bool {
					_, m := readTokenFile(t, role)
					return m.ExpiryTime != beforeMeta.ExpiryTime
				})
				break
			}
			if !clock.Now().Before(time.Unix(beforeMeta.ExpiryTime, 0)) {
				t.Fatalf("refresh %d: the file still holds the old token at its expiry", i+1)
			}
		}
		after, afterMeta := readTokenFile(t, role)
		left := time.Unix(beforeMeta.ExpiryTime, 0).Sub(clock.Now())
		t.Logf("refresh %d: new token after %v, the old one had %v left", i+1, clock.Now().Sub(start), left)
		if left < 15*time.Minute-time.Minute {
			t.Errorf("refresh %d came with %v left of a 1 h token, want it ahead of the 15 min margin", i+1, left)
		}
		if afterMeta.ExpiryTime <= beforeMeta.ExpiryTime || after == before {
			t.Errorf("refresh %d: expiry %d after %d, want a new, later token", i+1, afterMeta.ExpiryTime, beforeMeta.ExpiryTime)
		}
		waitReady(t, f) // every token file valid, the access token's too
	}
	n := reader.Check(t, "the token files")
	t.Logf("the reader loop read the files %d times and saw %d distinct tokens", n, len(seen))
}

func mustRoleKey(t *testing.T) tokens.Key {
	t.Helper()
	k, err := tokens.RoleTokenKey("prov", "reader", "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTokenFilesSurviveRestart (acceptance): the sidecar stops and a new
// one starts on the same identity directory (a container restart, the
// emptyDir kept): a reader loop finds a whole, valid token in the file
// all along; the new process replaces it with one of its own and removes
// what an interrupted write left.
func TestTokenFilesSurviveRestart(t *testing.T) {
	zts := newZTS(t)
	env, pub := keyFileEnv(t, zts)
	env = append([]string{"ATHENZ_TOKEN_FILES=roletoken:prov:role.reader"}, env...)
	f := startWithEnv(t, zts, env, pub, nil)
	waitReady(t, f)
	dir := f.srv.cfg.IdentityDir
	role := filepath.Join(dir, "tokens/prov/reader.roletoken")
	first, firstMeta := readTokenFile(t, role)
	seen := map[string]bool{}
	reader := startFileReader(t, seen, role)

	f.cancel()
	if err := f.srv.Wait(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readTokenFile(t, role); got != first {
		t.Errorf("after the sidecar stopped the file holds %q, want the last token %q", got, first)
	}
	if time.Unix(firstMeta.ExpiryTime, 0).Before(time.Now()) {
		t.Errorf("the token left behind expired at %d", firstMeta.ExpiryTime)
	}
	stale := filepath.Join(dir, "tokens/prov/.reader.roletoken.tmp-123")
	writeFile(t, filepath.Dir(stale), filepath.Base(stale), []byte("v=Z1;d=pr"))
	time.Sleep(100 * time.Millisecond) // the reader reads between the two processes

	g := startWithEnv(t, zts, env, pub, nil)
	waitReady(t, g)
	second, _ := readTokenFile(t, role)
	if second == first {
		t.Errorf("the new sidecar left the previous process's token in the file, want its own")
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("%s is still there, want it removed at start", stale)
	}
	n := reader.Check(t, "the token file")
	t.Logf("the reader loop read the file %d times across the restart and saw %d distinct tokens", n, len(seen))
}
