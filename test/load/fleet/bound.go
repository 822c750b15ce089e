package main

import "time"

// recoveryBound is the least peak call rate after an outage, over the
// steady rate, that any retry rule could reach with the refresh schedule
// as it is (a refresh that has not failed happens when it falls due): a
// rule that knew the moment ZTS came back and fetched the tokens that fell
// due during the outage in the order of their expiry, at the one constant
// total rate that gets each before it expires. The sidecars' rules do not
// know that moment, so their peak is higher; counting noise adds to both.
//
// The model is the fleet's steady state: refreshes fall due at a constant
// rate, each after an interval drawn uniformly from earliest to latest
// after its token was obtained; a token can be served until minLeft before
// its lifetime ends. Time after recovery is x; with a total rate C (in
// units of the steady rate), the refreshes that did not fail use S(x) of
// it (those due after the outage whose token was obtained before it) and
// by each x the rest must have fetched every failed token expiring by x:
// C x >= integral of S up to x + B(x). The bound is the largest ratio over
// x up to earliest (later, tokens fetched after the outage fall due again;
// leaving them out keeps it a lower bound).
func recoveryBound(lifetime, earliest, latest, outage, minLeft time.Duration) float64 {
	if outage <= 0 || latest <= earliest || earliest <= 0 {
		return 1
	}
	e, l, o := earliest.Minutes(), latest.Minutes(), outage.Minutes()
	serve := (lifetime - minLeft).Minutes()
	// atLeast is the share of refresh intervals of y minutes or more.
	atLeast := func(y float64) float64 { return min(1, max(0, (l-y)/(l-e))) }
	const dt = 0.1 // minutes
	var bound, cumS float64
	for x := dt; x <= e; x += dt {
		cumS += atLeast(o+x) * dt
		// B(x): fell due at d in the outage, obtained an interval I
		// before, expiring (serve - I) after d; expired by x after the
		// outage when I >= d + serve - o - x.
		var backlog float64
		for d := dt / 2; d < o; d += dt {
			backlog += atLeast(d+serve-o-x) * dt
		}
		bound = max(bound, (cumS+backlog)/x)
	}
	return bound
}
