package tokens

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// SkewLogThreshold is the clock skew between ZTS and the node worth a log
// line: less is within what the measurement can tell (issue times have a
// resolution of one second, and the request's round trip blurs them).
const SkewLogThreshold = 10 * time.Second

// ClockSkew estimates how far ZTS's clock is from this node's. ZTS sends
// no Date header, so the estimate comes from the issue times ZTS writes
// into what it issues (t= of role tokens and N-tokens, iat of access
// tokens), compared with when the request was sent and the answer came.
// It logs a line when the skew reaches SkewLogThreshold and each time it
// moves by that much again. The zero value and nil work (nil measures
// nothing).
type ClockSkew struct {
	log    logr.Logger
	offset atomic.Int64 // nanoseconds, ZTS's clock minus the node's
	known  atomic.Bool

	mu        sync.Mutex // guards logged and loggedSet
	logged    time.Duration
	loggedSet bool
}

// NewClockSkew returns a ClockSkew that logs to log.
func NewClockSkew(log logr.Logger) *ClockSkew { return &ClockSkew{log: log} }

// Offset returns the last estimate of ZTS's clock minus the node's, and
// whether there is one.
func (s *ClockSkew) Offset() (time.Duration, bool) {
	if s == nil || !s.known.Load() {
		return 0, false
	}
	return time.Duration(s.offset.Load()), true
}

// Observe records that ZTS issued something at issued (its clock, whole
// seconds) in answer to a request sent at sent and answered at received
// (the node's clock), and returns the estimate of ZTS's clock minus the
// node's.
func (s *ClockSkew) Observe(issued, sent, received time.Time) time.Duration {
	// issued is truncated to the second and the request's round trip
	// blurs when it happened: the estimate is good to about a second.
	mid := sent.Add(received.Sub(sent) / 2)
	est := issued.Sub(mid).Round(time.Second)
	if s == nil {
		return est
	}
	s.offset.Store(int64(est))
	s.known.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case abs(est) >= SkewLogThreshold && (!s.loggedSet || abs(est-s.logged) >= SkewLogThreshold):
		s.logged, s.loggedSet = est, true
		s.log.Info("ZTS's clock and this node's disagree; token lifetimes are counted from ZTS's issue times",
			"ztsaheadby", est.String())
	case abs(est) < SkewLogThreshold && s.loggedSet && abs(s.logged) >= SkewLogThreshold:
		s.logged = est
		s.log.Info("ZTS's clock and this node's agree again", "ztsaheadby", est.String())
	}
	return est
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// AthenzTokenTimes reads the issue (t=) and expiry (e=) times of an Athenz
// token (role token or N-token): "v=...;t=<unix>;e=<unix>;...;s=<sig>".
func AthenzTokenTimes(tok string) (issued, expires time.Time, ok bool) {
	unsigned, _, _ := strings.Cut(tok, ";s=")
	var t, e int64
	for f := range strings.SplitSeq(unsigned, ";") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "t":
			t, _ = strconv.ParseInt(v, 10, 64)
		case "e":
			e, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if t <= 0 || e <= 0 {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(t, 0), time.Unix(e, 0), true
}

// jwtTimes reads iat and exp of a JWT's claims, without checking its
// signature (the sidecar passes the token on; its receiver checks it).
func jwtTimes(tok string) (issued, expires time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	var claims struct {
		Iat int64 `json:"iat"`
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Iat <= 0 || claims.Exp <= 0 {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0), true
}
