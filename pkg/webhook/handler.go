package webhook

import (
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Paths the injector serves its webhooks on.
const (
	PathPods      = "/mutate-pods"
	PathWorkloads = "/mutate-workloads"
)

// values of the webhook metric label
const (
	webhookPods      = "pods"
	webhookWorkloads = "workloads"
)

// Options configure the admission handlers.
type Options struct {
	// Settings are the injector's own choices (version, default image, own
	// namespace).
	Settings Settings
	// Reader reads Namespaces and SidecarProfiles. In the injector it is
	// the manager's informer cache, so no admission makes an API call.
	// Required.
	Reader client.Reader
	// Metrics counts admissions. Default: nil, nothing counted.
	Metrics *Metrics
	// Logger for decisions. Default: discard.
	Logger logr.Logger
}

func (o Options) logger() logr.Logger {
	if o.Logger.GetSink() == nil {
		return logr.Discard()
	}
	return o.Logger
}
