// Package promlite evaluates the few PromQL forms of the chart's Grafana
// dashboard over samples scraped from a real run, so that the picture of
// the dashboard in docs/operations.md is drawn from real metrics where no
// Prometheus and no Grafana can run (test/dashboard). It is not PromQL:
// it parses and evaluates
//
//	METRIC{label="v", label!="v", label=~"re"}   an instant selector
//	rate(SELECTOR[RANGE])                        per-second increase between the
//	                                             first and last sample of the
//	                                             range (no extrapolation to its
//	                                             edges, unlike Prometheus)
//	sum|min|max|avg [by (l, ...)] (EXPR)         aggregation
//	histogram_quantile(Q, EXPR)                  from _bucket series with le
//
// with Grafana's $__rate_interval read as the given range.
package promlite

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Sample is one scraped value of a series at a time.
type Sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

// Scrape is every sample scraped at one time.
type Scrape struct {
	Time    time.Time `json:"time"`
	Samples []Sample  `json:"samples"`
}

// Series is one line of a panel: its labels and a value per time (NaN
// where there is none).
type Series struct {
	Labels map[string]string
	Values []float64
}

// Expr is a parsed expression.
type Expr interface {
	// eval returns the value of every series at scrape i.
	eval(scrapes []Scrape, i int) []point
	// Metrics lists the metric names the expression reads.
	Metrics() []string
}

type point struct {
	labels map[string]string
	value  float64
}

// Parse parses expr; rateInterval replaces $__rate_interval.
func Parse(expr string, rateInterval time.Duration) (Expr, error) {
	expr = strings.ReplaceAll(expr, "$__rate_interval", formatDuration(rateInterval))
	p := &parser{s: expr}
	e, err := p.expr()
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%q: unexpected %q at %d", expr, p.s[p.i:], p.i)
	}
	return e, nil
}

// Eval evaluates e at every scrape and returns its series, sorted by
// labels.
func Eval(e Expr, scrapes []Scrape) []Series {
	byKey := map[string]*Series{}
	for i := range scrapes {
		for _, pt := range e.eval(scrapes, i) {
			k := labelKey(pt.labels)
			s, ok := byKey[k]
			if !ok {
				s = &Series{Labels: pt.labels, Values: make([]float64, len(scrapes))}
				for j := range s.Values {
					s.Values[j] = math.NaN()
				}
				byKey[k] = s
			}
			s.Values[i] = pt.value
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Series, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}

func formatDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

// selector is METRIC{matchers}, optionally with a range.
type selector struct {
	name     string
	matchers []matcher
	rng      time.Duration
}

type matcher struct {
	label, op, value string
	re               *regexp.Regexp
}

func (m matcher) ok(l map[string]string) bool {
	v := l[m.label]
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	case "!~":
		return !m.re.MatchString(v)
	}
	return false
}

func (s *selector) Metrics() []string { return []string{s.name} }

func (s *selector) matches(x Sample) bool {
	if x.Name != s.name {
		return false
	}
	for _, m := range s.matchers {
		if !m.ok(x.Labels) {
			return false
		}
	}
	return true
}

func (s *selector) eval(scrapes []Scrape, i int) []point {
	var out []point
	for _, x := range scrapes[i].Samples {
		if s.matches(x) {
			out = append(out, point{labels: x.Labels, value: x.Value})
		}
	}
	return out
}

// rate is the per-second increase over the range, counter resets handled
// as Prometheus does (a drop starts from zero).
type rate struct{ sel *selector }

func (r *rate) Metrics() []string { return r.sel.Metrics() }

func (r *rate) eval(scrapes []Scrape, i int) []point {
	now := scrapes[i].Time
	type acc struct {
		labels      map[string]string
		first, last time.Time
		prev, inc   float64
		n           int
	}
	series := map[string]*acc{}
	for j := 0; j <= i; j++ {
		if now.Sub(scrapes[j].Time) > r.sel.rng {
			continue
		}
		for _, x := range scrapes[j].Samples {
			if !r.sel.matches(x) {
				continue
			}
			k := labelKey(x.Labels)
			a, ok := series[k]
			if !ok {
				series[k] = &acc{labels: x.Labels, first: scrapes[j].Time, last: scrapes[j].Time, prev: x.Value, n: 1}
				continue
			}
			if x.Value >= a.prev {
				a.inc += x.Value - a.prev
			} else {
				a.inc += x.Value
			}
			a.prev, a.last = x.Value, scrapes[j].Time
			a.n++
		}
	}
	var out []point
	for _, a := range series {
		if a.n < 2 {
			continue
		}
		out = append(out, point{labels: a.labels, value: a.inc / a.last.Sub(a.first).Seconds()})
	}
	return out
}

// aggregate is sum, min, max or avg by labels.
type aggregate struct {
	op string
	by []string
	e  Expr
}

func (a *aggregate) Metrics() []string { return a.e.Metrics() }

func (a *aggregate) eval(scrapes []Scrape, i int) []point {
	groups := map[string]*point{}
	counts := map[string]int{}
	for _, p := range a.e.eval(scrapes, i) {
		l := map[string]string{}
		for _, b := range a.by {
			if v, ok := p.labels[b]; ok {
				l[b] = v
			}
		}
		k := labelKey(l)
		g, ok := groups[k]
		if !ok {
			groups[k] = &point{labels: l, value: p.value}
			counts[k] = 1
			continue
		}
		counts[k]++
		switch a.op {
		case "sum", "avg":
			g.value += p.value
		case "min":
			g.value = math.Min(g.value, p.value)
		case "max":
			g.value = math.Max(g.value, p.value)
		}
	}
	out := make([]point, 0, len(groups))
	for k, g := range groups {
		if a.op == "avg" {
			g.value /= float64(counts[k])
		}
		out = append(out, *g)
	}
	return out
}

// quantile is histogram_quantile over cumulative buckets (label le), with
// Prometheus's linear interpolation inside a bucket.
type quantile struct {
	q float64
	e Expr
}

func (h *quantile) Metrics() []string { return h.e.Metrics() }

func (h *quantile) eval(scrapes []Scrape, i int) []point {
	type bucket struct{ le, count float64 }
	groups := map[string][]bucket{}
	labels := map[string]map[string]string{}
	for _, p := range h.e.eval(scrapes, i) {
		le, err := strconv.ParseFloat(p.labels["le"], 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for k, v := range p.labels {
			if k != "le" {
				l[k] = v
			}
		}
		k := labelKey(l)
		groups[k] = append(groups[k], bucket{le, p.value})
		labels[k] = l
	}
	var out []point
	for k, bs := range groups {
		sort.Slice(bs, func(a, b int) bool { return bs[a].le < bs[b].le })
		total := bs[len(bs)-1].count
		if total <= 0 || !math.IsInf(bs[len(bs)-1].le, 1) {
			continue
		}
		rank := h.q * total
		lower, prev := 0.0, 0.0
		v := math.NaN()
		for _, b := range bs {
			if b.count >= rank {
				if math.IsInf(b.le, 1) {
					v = lower
				} else {
					v = lower + (b.le-lower)*(rank-prev)/math.Max(b.count-prev, 1e-12)
				}
				break
			}
			lower, prev = b.le, b.count
		}
		out = append(out, point{labels: labels[k], value: v})
	}
	return out
}

type parser struct {
	s string
	i int
}

func (p *parser) space() {
	for p.i < len(p.s) && unicode.IsSpace(rune(p.s[p.i])) {
		p.i++
	}
}

func (p *parser) ident() string {
	p.space()
	j := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] == ':' || unicode.IsLetter(rune(p.s[p.i])) || (p.i > j && unicode.IsDigit(rune(p.s[p.i])))) {
		p.i++
	}
	return p.s[j:p.i]
}

func (p *parser) expect(tok string) error {
	p.space()
	if !strings.HasPrefix(p.s[p.i:], tok) {
		return fmt.Errorf("want %q at %d", tok, p.i)
	}
	p.i += len(tok)
	return nil
}

func (p *parser) peek(tok string) bool {
	p.space()
	return strings.HasPrefix(p.s[p.i:], tok)
}

func (p *parser) expr() (Expr, error) {
	name := p.ident()
	switch name {
	case "":
		return nil, fmt.Errorf("want an expression at %d", p.i)
	case "rate":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		sel, err := p.selector(p.ident())
		if err != nil {
			return nil, err
		}
		if sel.rng == 0 {
			return nil, fmt.Errorf("rate needs a range")
		}
		return &rate{sel}, p.expect(")")
	case "sum", "min", "max", "avg":
		a := &aggregate{op: name}
		if p.peek("by") {
			p.ident()
			if err := p.expect("("); err != nil {
				return nil, err
			}
			for !p.peek(")") {
				a.by = append(a.by, p.ident())
				if p.peek(",") {
					p.i++
				}
			}
			p.i++
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		a.e = e
		return a, p.expect(")")
	case "histogram_quantile":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		p.space()
		j := p.i
		for p.i < len(p.s) && (p.s[p.i] == '.' || unicode.IsDigit(rune(p.s[p.i]))) {
			p.i++
		}
		q, err := strconv.ParseFloat(p.s[j:p.i], 64)
		if err != nil {
			return nil, fmt.Errorf("quantile: %w", err)
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &quantile{q, e}, p.expect(")")
	}
	return p.selector(name)
}

func (p *parser) selector(name string) (*selector, error) {
	if name == "" {
		return nil, fmt.Errorf("want a metric name at %d", p.i)
	}
	s := &selector{name: name}
	if p.peek("{") {
		p.i++
		for !p.peek("}") {
			m := matcher{label: p.ident()}
			p.space()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(p.s[p.i:], op) {
					m.op = op
					p.i += len(op)
					break
				}
			}
			if m.op == "" {
				return nil, fmt.Errorf("want a matcher at %d", p.i)
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return nil, fmt.Errorf("want a quoted value at %d", p.i)
			}
			end := strings.IndexByte(p.s[p.i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated value at %d", p.i)
			}
			m.value = p.s[p.i+1 : p.i+1+end]
			p.i += end + 2
			if m.op == "=~" || m.op == "!~" {
				re, err := regexp.Compile("^(?:" + m.value + ")$")
				if err != nil {
					return nil, err
				}
				m.re = re
			}
			s.matchers = append(s.matchers, m)
			if p.peek(",") {
				p.i++
			}
		}
		p.i++
	}
	if p.peek("[") {
		p.i++
		end := strings.IndexByte(p.s[p.i:], ']')
		if end < 0 {
			return nil, fmt.Errorf("unterminated range at %d", p.i)
		}
		d, err := time.ParseDuration(p.s[p.i : p.i+end])
		if err != nil {
			return nil, fmt.Errorf("range: %w", err)
		}
		s.rng = d
		p.i += end + 1
	}
	return s, nil
}
