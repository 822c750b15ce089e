package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// config is one simulation: a fleet, then a ZTS outage, then a mass
// restart.
type config struct {
	pods int
	// warmup is how long the fleet runs before the steady state is
	// measured: Pods start spread over their tokens' refresh interval, so
	// that their refreshes are spread as in a fleet whose Pods started at
	// unrelated times.
	warmup time.Duration
	// steady is the window the steady state is measured over.
	steady time.Duration
	// outage is how long ZTS refuses connections; recovery how long the
	// fleet is watched after it.
	outage, recovery time.Duration
	// restart sidecars start within restartWithin (a node drain): their
	// Pods are deleted and new ones start.
	restart       int
	restartWithin time.Duration
	seed          uint64
}

// results are the figures of one simulation.
type results struct {
	cfg config
	// spread is how long the Pods' starts were spread over.
	spread time.Duration
	// perMinute counts calls to ZTS by minute of fake time since the
	// start, tokens and identities together.
	steadyPerMin, outagePerMin, recoveryPerMin []int
	steadyIdentity                             int // identity calls in the steady window
	// lost counts the checks (each Pod's each prefetched token, each
	// minute of the outage and the recovery) that found no token to
	// serve; notReady those that found the identity not ready.
	lost, notReady, checks int
	minLeft                time.Duration // least time left on a prefetched token in those checks
	restartPerSec          []int         // calls by second from the first restart
	readyIn                []time.Duration
	restartCalls           int
	restartIdentityCalls   int
	wall                   time.Duration
	events                 int // calls to ZTS in all
	// bound is the least peak after the outage, over the steady rate,
	// that any retry rule could reach with this refresh schedule
	// (recoveryBound).
	bound float64
}

func simulate(cfg config, logf func(string, ...any)) (res results, err error) {
	wallStart := time.Now()
	res.cfg = cfg
	s, err := newSim(cfg.seed)
	if err != nil {
		return res, err
	}
	defer s.close()
	probe := tokens.NewCache(nil, tokens.CacheOptions{Clock: s.clock})
	earliest, latest := probe.RefreshAfter(tokenLifetime)
	probe.Close()
	res.spread = (earliest + latest) / 2
	res.bound = recoveryBound(tokenLifetime, earliest, latest, cfg.outage, tokens.MinServeRemaining)

	var startErr error
	for range cfg.pods {
		s.at(s.clock.Now().Add(time.Duration(s.rnd.Int64N(int64(res.spread)))), func() {
			if _, err := s.startPod(); err != nil && startErr == nil {
				startErr = err
			}
		})
	}
	minute := func(t time.Duration) int { return int(t / time.Minute) }
	steadyFrom := cfg.warmup
	logf("%d Pods starting over %v; steady state measured from %v to %v", cfg.pods, res.spread, steadyFrom, steadyFrom+cfg.steady)
	s.run(s.start.Add(steadyFrom+cfg.steady), nil)
	if startErr != nil {
		return res, startErr
	}
	for m := minute(steadyFrom); m < minute(steadyFrom+cfg.steady); m++ {
		res.steadyPerMin = append(res.steadyPerMin, s.calls.count(m*60, m*60+60, -1, -1))
	}
	res.steadyIdentity = s.calls.count(minute(steadyFrom)*60, minute(steadyFrom+cfg.steady)*60, callIdentity, -1)
	for _, p := range s.pods {
		if p.readyAt.IsZero() {
			return res, fmt.Errorf("pod %d not ready after the warm-up", p.id)
		}
	}

	// The outage: ZTS refuses connections; every minute, every Pod must
	// still have each prefetched token to serve, and its identity.
	outageFrom := steadyFrom + cfg.steady
	logf("ZTS down from %v to %v (%.0f s of wall time so far)", outageFrom, outageFrom+cfg.outage, time.Since(wallStart).Seconds())
	res.minLeft = tokenLifetime
	check := func(now time.Time) {
		for _, p := range s.pods {
			if p.stopped {
				continue
			}
			if p.mgr.Ready() != nil {
				res.notReady++
			}
			for _, k := range p.keys {
				res.checks++
				tok, ok := p.cache.Lookup(k)
				left := tok.Expiry.Sub(now)
				if !ok || left <= tokens.MinServeRemaining {
					res.lost++
				}
				res.minLeft = min(res.minLeft, left)
			}
		}
	}
	s.zts.RefuseConnections(true)
	s.run(s.start.Add(outageFrom+cfg.outage), check)
	s.zts.RefuseConnections(false)
	recoveryFrom := outageFrom + cfg.outage
	logf("ZTS back; watching until %v (%.0f s of wall time so far)", recoveryFrom+cfg.recovery, time.Since(wallStart).Seconds())
	s.run(s.start.Add(recoveryFrom+cfg.recovery), check)
	for m := minute(outageFrom); m < minute(recoveryFrom); m++ {
		res.outagePerMin = append(res.outagePerMin, s.calls.count(m*60, m*60+60, -1, -1))
	}
	for m := minute(recoveryFrom); m < minute(recoveryFrom+cfg.recovery); m++ {
		res.recoveryPerMin = append(res.recoveryPerMin, s.calls.count(m*60, m*60+60, -1, -1))
	}

	// The mass restart: cfg.restart Pods replaced, their new sidecars
	// starting within restartWithin.
	restartFrom := recoveryFrom + cfg.recovery
	logf("restarting %d sidecars within %v from %v (%.0f s of wall time so far)", cfg.restart, cfg.restartWithin, restartFrom, time.Since(wallStart).Seconds())
	live := slices.Clone(s.pods)
	s.rnd.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	var fresh []*pod
	for _, old := range live[:min(cfg.restart, len(live))] {
		s.at(s.start.Add(restartFrom+time.Duration(s.rnd.Int64N(int64(cfg.restartWithin)))), func() {
			s.stopPod(old)
			p, err := s.startPod()
			if err != nil && startErr == nil {
				startErr = err
			}
			fresh = append(fresh, p)
		})
	}
	const restartWatch = 10 * time.Minute
	s.run(s.start.Add(restartFrom+restartWatch), nil)
	if startErr != nil {
		return res, startErr
	}
	sec := int(restartFrom / time.Second)
	for i := range 60 {
		res.restartPerSec = append(res.restartPerSec, s.calls.count(sec+i, sec+i+1, -1, -1))
	}
	res.restartCalls = s.calls.count(sec, sec+int(restartWatch/time.Second), -1, -1)
	res.restartIdentityCalls = s.calls.count(sec, sec+int(restartWatch/time.Second), callIdentity, -1)
	var notReady int
	for _, p := range fresh {
		if p.readyAt.IsZero() {
			notReady++
			continue
		}
		res.readyIn = append(res.readyIn, p.readyAt.Sub(s.start.Add(restartFrom)))
	}
	if notReady > 0 {
		return res, fmt.Errorf("%d of %d restarted sidecars not ready after %v", notReady, len(fresh), restartWatch)
	}
	slices.Sort(res.readyIn)
	res.events = s.calls.count(0, 1<<30, -1, -1)
	res.wall = time.Since(wallStart)
	return res, nil
}

// errNoFleet is returned for a config with no Pods.
var errNoFleet = errors.New("no pods")

func (c config) validate() error {
	if c.pods <= 0 {
		return errNoFleet
	}
	if c.restartWithin <= 0 || c.steady < time.Minute || c.recovery < time.Minute || c.outage < time.Minute {
		return fmt.Errorf("restart window, steady, outage and recovery must be at least a minute (restart window positive): %+v", c)
	}
	return nil
}
