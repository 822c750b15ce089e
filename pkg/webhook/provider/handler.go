package provider

// The callback reviews tokens and reads Pods (through an informer, and on
// a cache miss with a list by name: no get), besides the profiles and
// namespaces the injector reads anyway. controller-gen writes these into
// config/rbac/provider/role.yaml, a ClusterRole of its own, so that an
// injector without the callback gets neither.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Paths ZTS calls, under the provider endpoint registered in Athenz.
const (
	PathInstance = "/instance"
	PathRefresh  = "/refresh"
)

// MaxBodyBytes bounds a request body; an InstanceConfirmation with a
// service account token is a few KiB.
const MaxBodyBytes = 64 << 10

// InstanceConfirmation is what ZTS sends to a provider service and what the
// provider answers with when it confirms the instance.
type InstanceConfirmation struct {
	Provider        string `json:"provider"`
	Domain          string `json:"domain"`
	Service         string `json:"service"`
	AttestationData string `json:"attestationData,omitempty"`
	// Attributes ZTS adds: sanDNS, sanIP, sanURI (comma-separated),
	// clientIP, hostname, instanceId, principal, certSubjectDn, ...
	Attributes map[string]string `json:"attributes,omitempty"`
}

// TokenReviewer creates TokenReviews. client-go's
// kubernetes.Interface.AuthenticationV1().TokenReviews() is one.
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// Options configure a Handler.
type Options struct {
	// Reader reads Namespaces and SidecarProfiles (and Pods, unless Pods
	// is set). In the injector it is the manager's informer cache.
	// Required.
	Reader client.Reader
	// Pods reads Pods by key: in the injector a PodCache. Default: Reader.
	Pods client.Reader
	// LiveReader reads a Pod from the API server when Pods does not have
	// it, or has an older Pod of the same name: a Pod registers within
	// seconds of its creation, possibly before the informer saw it.
	// Default: nil, Reader only.
	LiveReader client.Reader
	// TokenReviews checks service account tokens with the API server.
	// Required.
	TokenReviews TokenReviewer
	// Audience is the audience the service account token must carry
	// (--provider-audience); the profiles' identity.tokenAudience must name
	// it. Required.
	Audience string
	// InjectorNamespace is the injector's namespace, whose profiles serve
	// the other namespaces and bound their own profiles (the identity
	// policy), as in the injector. Required.
	InjectorNamespace string
	// Provider, if set, is the only provider service name confirmed
	// (--provider-name, e.g. "sys.auth.k8s"). Default: any.
	Provider string
	// PodIPWait is how long a confirmation that names an IP waits for a
	// Pod bound to a node to have its IP in its status (waitPodIP).
	// Default DefaultPodIPWait; negative: do not wait.
	PodIPWait time.Duration
	// Logger logs every decision, never a token. Default: discard.
	Logger logr.Logger
	// RefusalRate and RefusalBurst limit the refused requests of each
	// client (IP address): after RefusalBurst refusals in a row, a client
	// gets 429 without a TokenReview until its bucket refills at
	// RefusalRate per second. Defaults: DefaultRefusalRate,
	// DefaultRefusalBurst.
	RefusalRate  float64
	RefusalBurst int
	// Now is the clock of the refusal limit. Default: time.Now.
	Now func() time.Time
}

// Handler serves PathInstance and PathRefresh.
type Handler struct {
	o        Options
	log      logr.Logger
	refusals *refusals
}

// NewHandler checks o and returns the handler. The error names the
// missing option.
func NewHandler(o Options) (*Handler, error) {
	switch {
	case o.Reader == nil:
		return nil, errors.New("provider: Options.Reader is required")
	case o.TokenReviews == nil:
		return nil, errors.New("provider: Options.TokenReviews is required")
	case o.Audience == "":
		return nil, errors.New("provider: Options.Audience is required (--provider-audience)")
	case o.InjectorNamespace == "":
		return nil, errors.New("provider: Options.InjectorNamespace is required (--namespace)")
	case o.RefusalRate < 0 || o.RefusalBurst < 0:
		return nil, errors.New("provider: Options.RefusalRate and RefusalBurst must not be negative")
	}
	if o.Provider != "" {
		if err := tokens.ValidateCompoundName(o.Provider); err != nil {
			return nil, fmt.Errorf("provider: Options.Provider (--provider-name): %w", err)
		}
	}
	if o.Pods == nil {
		o.Pods = o.Reader
	}
	if o.RefusalRate == 0 {
		o.RefusalRate = DefaultRefusalRate
	}
	if o.RefusalBurst == 0 {
		o.RefusalBurst = DefaultRefusalBurst
	}
	if o.PodIPWait == 0 {
		o.PodIPWait = DefaultPodIPWait
	}
	log := o.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{o: o, log: log, refusals: newRefusals(o.RefusalRate, o.RefusalBurst, o.Now)}, nil
}

// ServeHTTP answers ZTS: 200 with the confirmation when the instance is
// the Pod it claims to be, else {"code","message"} with 403 (a failed
// check, named; MsgTokenRefused for every token the API server refuses),
// 400 (malformed request), 404, 405, 429 (too many refusals from this
// client) or 503 (the API server could not be asked). Every decision is
// logged with the client's address and certificate subject.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var refresh bool
	switch r.URL.Path {
	case PathInstance:
	case PathRefresh:
		refresh = true
	default:
		writeError(w, &apiError{status: http.StatusNotFound,
			msg: fmt.Sprintf("no provider endpoint %s: ZTS calls POST %s and POST %s", r.URL.Path, PathInstance, PathRefresh)})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("method %s not allowed on %s: use POST", r.Method, r.URL.Path)})
		return
	}
	client := clientKey(r.RemoteAddr)
	log := h.log.WithValues("refresh", refresh, "client", client)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		log = log.WithValues("clientCert", r.TLS.PeerCertificates[0].Subject.String())
	}
	if throttled, wait := h.refusals.throttled(client); throttled {
		log.V(1).Info("instance request throttled", "retryAfter", wait.String())
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, &apiError{status: http.StatusTooManyRequests,
			msg: "too many refused requests from this client: retry later"})
		return
	}
	c, err := decode(w, r)
	if err != nil {
		log.Info("instance request malformed", "reason", err.Error())
		writeError(w, err)
		return
	}
	log = log.WithValues("provider", c.Provider, "domain", c.Domain, "service", c.Service)
	pod, err := h.confirm(r.Context(), c)
	if pod != nil {
		log = log.WithValues("namespace", pod.Namespace, "pod", pod.Name)
	}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusForbidden {
			h.refusals.refused(client)
			reason := ae.msg
			if ae.logReason != "" {
				reason = ae.logReason
			}
			log.Info("instance refused", "check", ae.check, "reason", reason)
		} else {
			log.Error(err, "cannot confirm instance")
		}
		writeError(w, err)
		return
	}
	log.Info("instance confirmed", "instanceId", string(pod.UID))
	// The answer is the confirmation, without the token: ZTS reads only
	// the attributes of the answer.
	c.AttestationData = ""
	writeJSON(w, http.StatusOK, c)
}

// decode reads and checks the request body.
func decode(w http.ResponseWriter, r *http.Request) (*InstanceConfirmation, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, badRequest("request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, badRequest("reading request body: %v", err)
	}
	var c InstanceConfirmation
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, badRequest("request body is not an InstanceConfirmation: %v", err)
	}
	for _, f := range []struct{ name, value string }{
		{"provider", c.Provider}, {"domain", c.Domain}, {"service", c.Service}, {"attestationData", c.AttestationData},
	} {
		if f.value == "" {
			return nil, badRequest("%s: missing", f.name)
		}
	}
	if err := tokens.ValidateCompoundName(c.Provider); err != nil {
		return nil, badRequest("provider: %v", err)
	}
	if err := tokens.ValidateDomain(c.Domain); err != nil {
		return nil, badRequest("domain: %v", err)
	}
	if err := tokens.ValidateService(c.Service); err != nil {
		return nil, badRequest("service: %v", err)
	}
	return &c, nil
}

// apiError is answered as {"code":status,"message":msg}. For a refusal
// (403) msg starts with the check's name.
type apiError struct {
	status int
	check  string
	msg    string
	// logReason, if set, is logged instead of msg: what the answer does
	// not tell the caller.
	logReason string
}

func (e *apiError) Error() string { return e.msg }

// refuse is a failed check: 403 "<check>: <detail>".
func refuse(check, format string, args ...any) error {
	return &apiError{status: http.StatusForbidden, check: check, msg: check + ": " + fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// unavailable is a failure to ask the API server: 503, so that ZTS's
// caller retries rather than takes it for a verdict.
func unavailable(format string, args ...any) error {
	return &apiError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		status, msg = ae.status, ae.msg
	}
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":500,"message":"encoding the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
