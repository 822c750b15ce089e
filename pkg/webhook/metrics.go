package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of an admission, the values of the outcome label.
const (
	OutcomeInjected = "injected" // Pod injected, or workload template updated
	OutcomeSkipped  = "skipped"  // allowed unchanged
	OutcomeDenied   = "denied"   // a user mistake, refused
	OutcomeError    = "error"    // the injector's fault, refused
)

// Metrics counts admissions as athenz_injector_admissions_total{webhook,
// outcome}, webhook being "pods" or "workloads". A nil *Metrics counts
// nothing.
type Metrics struct {
	admissions *prometheus.CounterVec
}

// NewMetrics registers the injector's metrics with reg. Registering twice
// with one registry reuses the first collector, so tests can start the
// injector more than once in a process.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "athenz_injector_admissions_total",
		Help: "Admission requests by webhook (pods, workloads) and outcome (injected, skipped, denied, error).",
	}, []string{"webhook", "outcome"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		c = existing
	}
	for _, wh := range []string{webhookPods, webhookWorkloads} {
		for _, o := range []string{OutcomeInjected, OutcomeSkipped, OutcomeDenied, OutcomeError} {
			c.WithLabelValues(wh, o)
		}
	}
	return &Metrics{admissions: c}, nil
}

func (m *Metrics) observe(webhook, outcome string) {
	if m == nil {
		return
	}
	m.admissions.WithLabelValues(webhook, outcome).Inc()
}
