package promlite

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestEval: the dashboard's forms over three scrapes of a counter, a
// counter that resets, a histogram and a gauge, against values worked out
// by hand as Prometheus computes them.
func TestEval(t *testing.T) {
	t0 := time.Unix(1000, 0)
	text := []string{
		`# TYPE req counter
req{outcome="hit",pod="a"} 10
req{outcome="hit",pod="b"} 100
req{outcome="miss",pod="a"} 0
lat_bucket{le="0.1"} 0
lat_bucket{le="1"} 0
lat_bucket{le="+Inf"} 0
exp{pod="a"} 300
exp{pod="b"} 200`,
		`req{outcome="hit",pod="a"} 20
req{outcome="hit",pod="b"} 5
req{outcome="miss",pod="a"} 10
lat_bucket{le="0.1"} 5
lat_bucket{le="1"} 10
lat_bucket{le="+Inf"} 10
exp{pod="a"} 290
exp{pod="b"} 190`,
	}
	var scrapes []Scrape
	for i, tx := range text {
		s, err := ParseText(strings.NewReader(tx), map[string]string{"namespace": "ns"})
		if err != nil {
			t.Fatal(err)
		}
		scrapes = append(scrapes, Scrape{Time: t0.Add(time.Duration(i) * 10 * time.Second), Samples: s})
	}
	cases := []struct {
		expr string
		want map[string]float64 // labelKey -> value at the last scrape
	}{
		// a: +10 in 10 s; b: reset to 5, counted as +5.
		{`sum by (outcome) (rate(req[1m]))`, map[string]float64{"outcome=hit,": 1.5, "outcome=miss,": 1}},
		{`sum(rate(req{outcome!="miss"}[1m]))`, map[string]float64{"": 1.5}},
		{`min by (namespace) (exp)`, map[string]float64{"namespace=ns,": 190}},
		// 10 observations: 5 up to 0.1, 5 in (0.1, 1]; the median is the
		// top of the first bucket, p90 interpolates in the second.
		{`histogram_quantile(0.5, sum by (le) (rate(lat_bucket[$__rate_interval])))`, map[string]float64{"": 0.1}},
		{`histogram_quantile(0.9, sum by (le) (rate(lat_bucket[1m])))`, map[string]float64{"": 0.1 + 0.9*0.8}},
	}
	for _, c := range cases {
		e, err := Parse(c.expr, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, s := range Eval(e, scrapes) {
			got[labelKey(s.Labels)] = s.Values[len(s.Values)-1]
		}
		if len(got) != len(c.want) {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
		for k, w := range c.want {
			if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
				t.Errorf("%s {%s} = %v, want %v", c.expr, k, g, w)
			}
		}
	}
	if _, err := Parse(`rate(req)`, time.Minute); err == nil {
		t.Errorf("rate without a range parsed")
	}
	if _, err := Parse(`sum(req) junk`, time.Minute); err == nil {
		t.Errorf("trailing junk parsed")
	}
}
