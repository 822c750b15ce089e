package webhook

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Annotations the injector reads on Pods and workloads, and writes on Pods.
const (
	// AnnotationInject opts a Pod in ("true") or out ("false"). On a
	// workload it is copied into the Pod template.
	AnnotationInject = "athenz.io/inject"
	// AnnotationProfile names the SidecarProfile to use.
	AnnotationProfile = "athenz.io/profile"
	// AnnotationDomain asks for another Athenz domain than the profile's
	// template gives; the profile's spec.identityPolicy must allow it.
	AnnotationDomain = "athenz.io/domain"
	// AnnotationService asks for another Athenz service than the profile's
	// template gives; the profile's spec.identityPolicy must allow it.
	AnnotationService = "athenz.io/service"
	// AnnotationPrefetch replaces the profile's prefetch list, e.g.
	// "prov:role.reader,other:domain".
	AnnotationPrefetch = "athenz.io/prefetch"
	// AnnotationTokenFiles replaces the profile's token files, e.g.
	// "accesstoken:prov:role.reader,roletoken:prov:role.writer".
	AnnotationTokenFiles = "athenz.io/token-files"
	// AnnotationSidecarImage overrides the sidecar image.
	AnnotationSidecarImage = "athenz.io/sidecar-image"
	// AnnotationSidecarCPU overrides the sidecar's CPU request (and limit,
	// when the profile sets one).
	AnnotationSidecarCPU = "athenz.io/sidecar-cpu"
	// AnnotationSidecarMemory overrides the sidecar's memory request (and
	// limit, when one is set).
	AnnotationSidecarMemory = "athenz.io/sidecar-memory"
	// AnnotationNativeSidecar overrides the profile's nativeSidecar:
	// "true" or "Always", "false" or "Never".
	AnnotationNativeSidecar = "athenz.io/native-sidecar"
	// AnnotationAPIPort and AnnotationHealthPort override the profile's
	// sidecar.ports.api and sidecar.ports.health (1-65535). On a
	// hostNetwork Pod the health port is opened only when this annotation
	// names one.
	AnnotationAPIPort    = "athenz.io/sidecar-api-port"
	AnnotationHealthPort = "athenz.io/sidecar-health-port"
	// AnnotationRunAsUser and AnnotationRunAsGroup override the profile's
	// sidecar.runAsUser and sidecar.runAsGroup (numeric IDs).
	AnnotationRunAsUser  = "athenz.io/sidecar-run-as-user"
	AnnotationRunAsGroup = "athenz.io/sidecar-run-as-group"
	// AnnotationInjectContainers replaces the profile's injectContainers:
	// the comma-separated names of the containers that get the identity
	// volume and the ATHENZ_* variables. Each must be a container or init
	// container of the Pod.
	AnnotationInjectContainers = "athenz.io/inject-containers"
	// AnnotationInitOnly overrides the profile's sidecar.initOnly: "true"
	// adds only an init container that fetches the identity files.
	AnnotationInitOnly = "athenz.io/init-only"
	// AnnotationImagePullSecrets replaces the profile's
	// sidecar.imagePullSecrets: comma-separated Secret names.
	AnnotationImagePullSecrets = "athenz.io/image-pull-secrets"
	// AnnotationPlacement overrides the profile's sidecar.placement: Auto,
	// First or Last.
	AnnotationPlacement = "athenz.io/sidecar-placement"
	// AnnotationShutdownDelay overrides the profile's
	// sidecar.shutdownDelaySeconds (nativeSidecar: Never).
	AnnotationShutdownDelay = "athenz.io/sidecar-shutdown-delay-seconds"

	// AnnotationStatus is written on injected Pods: JSON saying what was
	// injected, by which injector version and profile. Its presence makes
	// the injector leave the Pod alone.
	AnnotationStatus = "athenz.io/status"
	// AnnotationDefaultContainer makes kubectl logs and exec pick the app,
	// not the sidecar. Set only when the Pod does not set it.
	AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"
	// AnnotationInjectCopied is written on workloads whose Pod template got
	// athenz.io/inject from the workload's metadata, so that removing the
	// workload's annotation removes the copy, and only the copy.
	AnnotationInjectCopied = "athenz.io/inject-copied"
)

// LabelRevision, on a Pod or its namespace, selects the SidecarProfile whose
// spec.revision it names when the Pod names no profile; the injector sets
// it on injected Pods to the revision of the profile they got.
const LabelRevision = "athenz.io/rev"

// NamespaceLabelInject on a namespace with the value NamespaceInjectEnabled
// opts in every Pod of the namespace that does not say "false".
const (
	NamespaceLabelInject   = "athenz.io/inject"
	NamespaceInjectEnabled = "enabled"
)

// Denial is a mistake in what the user sent (an annotation, a clash with
// what the injector adds, an unusable profile) or an identity the policy
// refuses. The handler answers it with admission.Denied and the message,
// which names what to fix; the provider callback refuses with it.
type Denial struct {
	Msg string
	// Check names what failed, for the provider callback's refusals
	// (CheckProfile, CheckPolicy, CheckAnnotation); empty for mistakes the
	// callback never sees.
	Check string
}

// Checks of Denial.Check.
const (
	// CheckProfile: no usable profile serves the Pod.
	CheckProfile = "profile"
	// CheckPolicy: the identity policy refuses the Pod's identity.
	CheckPolicy = "policy"
	// CheckAnnotation: an athenz.io/* annotation is malformed.
	CheckAnnotation = "annotation"
)

func (d *Denial) Error() string { return d.Msg }

func denyf(format string, args ...any) error {
	return &Denial{Msg: fmt.Sprintf(format, args...)}
}

func denyCheck(check, format string, args ...any) error {
	return &Denial{Msg: fmt.Sprintf(format, args...), Check: check}
}

func annotationError(key, value, format string, args ...any) error {
	return denyCheck(CheckAnnotation, "annotation %s: %q: %s", key, truncate(value), fmt.Sprintf(format, args...))
}

// truncate keeps a denial short when a value is huge.
func truncate(s string) string {
	const limit = 100
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// parseInject reads an athenz.io/inject value: set reports whether the
// annotation is there at all.
func parseInject(annotations map[string]string) (value, set bool, err error) {
	v, ok := annotations[AnnotationInject]
	if !ok {
		return false, false, nil
	}
	switch v {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, true, annotationError(AnnotationInject, v, `want "true" or "false"`)
}

// ProfileName returns the profile the Pod asks for with athenz.io/profile,
// or "" when it asks for none (then "default" applies).
func ProfileName(annotations map[string]string) (string, error) {
	name, ok := annotations[AnnotationProfile]
	if !ok {
		return "", nil
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", annotationError(AnnotationProfile, name, "not a SidecarProfile name: %s", strings.Join(errs, "; "))
	}
	return name, nil
}

// overrides are the per-Pod annotations, parsed and validated; nil means
// "the profile's". The identity annotations are PodIdentity's.
type overrides struct {
	prefetch              *string
	tokenFiles            *string
	image                 string
	cpu, memory           *resource.Quantity
	native                *bool
	apiPort, healthPort   *int32
	runAsUser, runAsGroup *int64
	containers            []string
	initOnly              *bool
	pullSecrets           []string
	pullSecretsSet        bool
	placement             v1alpha1.SidecarPlacement
	shutdownDelay         *int32
}

func parseOverrides(a map[string]string) (overrides, error) {
	var o overrides
	if v, ok := a[AnnotationPrefetch]; ok {
		targets, err := tokens.ParseTargets(v)
		if err != nil {
			return o, annotationError(AnnotationPrefetch, v, "%v", err)
		}
		s := joinTargets(targets)
		o.prefetch = &s
	}
	if v, ok := a[AnnotationTokenFiles]; ok {
		s, err := canonicalTokenFiles(v)
		if err != nil {
			return o, annotationError(AnnotationTokenFiles, v, "%v", err)
		}
		o.tokenFiles = &s
	}
	if v, ok := a[AnnotationSidecarImage]; ok {
		if err := validateImage(v); err != nil {
			return o, annotationError(AnnotationSidecarImage, v, "%v", err)
		}
		o.image = v
	}
	var err error
	if o.cpu, err = parseQuantity(a, AnnotationSidecarCPU); err != nil {
		return o, err
	}
	if o.memory, err = parseQuantity(a, AnnotationSidecarMemory); err != nil {
		return o, err
	}
	if v, ok := a[AnnotationNativeSidecar]; ok {
		var native bool
		switch v {
		case "true", string(v1alpha1.NativeSidecarAlways):
			native = true
		case "false", string(v1alpha1.NativeSidecarNever):
		default:
			return o, annotationError(AnnotationNativeSidecar, v, `want "true", "false", "Always" or "Never"`)
		}
		o.native = &native
	}
	if o.apiPort, err = parseInt[int32](a, AnnotationAPIPort, 1, 65535, "a port"); err != nil {
		return o, err
	}
	if o.healthPort, err = parseInt[int32](a, AnnotationHealthPort, 1, 65535, "a port"); err != nil {
		return o, err
	}
	if o.runAsUser, err = parseInt[int64](a, AnnotationRunAsUser, 1, maxID, "a user ID other than root's"); err != nil {
		return o, err
	}
	if o.runAsGroup, err = parseInt[int64](a, AnnotationRunAsGroup, 0, maxID, "a group ID"); err != nil {
		return o, err
	}
	if o.shutdownDelay, err = parseInt[int32](a, AnnotationShutdownDelay, 0, maxShutdownDelay, "seconds"); err != nil {
		return o, err
	}
	if v, ok := a[AnnotationInitOnly]; ok {
		b, err := parseBool(AnnotationInitOnly, v)
		if err != nil {
			return o, err
		}
		o.initOnly = &b
	}
	if v, ok := a[AnnotationInjectContainers]; ok {
		if o.containers, err = parseNames(AnnotationInjectContainers, v, validation.IsDNS1123Label, "a container name"); err != nil {
			return o, err
		}
		if len(o.containers) == 0 {
			return o, annotationError(AnnotationInjectContainers, v, "name at least one container")
		}
	}
	if v, ok := a[AnnotationImagePullSecrets]; ok {
		if o.pullSecrets, err = parseNames(AnnotationImagePullSecrets, v, validation.IsDNS1123Subdomain, "a Secret name"); err != nil {
			return o, err
		}
		o.pullSecretsSet = true
	}
	if v, ok := a[AnnotationPlacement]; ok {
		switch p := v1alpha1.SidecarPlacement(v); p {
		case v1alpha1.PlacementAuto, v1alpha1.PlacementFirst, v1alpha1.PlacementLast:
			o.placement = p
		default:
			return o, annotationError(AnnotationPlacement, v, `want "Auto", "First" or "Last"`)
		}
	}
	return o, nil
}

// maxID is the largest user or group ID Kubernetes accepts.
const maxID = 2147483647

// maxShutdownDelay bounds sidecar.shutdownDelaySeconds (the CRD's maximum).
const maxShutdownDelay = 3600

// parseInt reads an integer annotation in [lo, hi]; what names the kind of
// value for the message.
func parseInt[T int32 | int64](a map[string]string, key string, lo, hi int64, what string) (*T, error) {
	v, ok := a[key]
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return nil, annotationError(key, v, "want %s, an integer from %d to %d", what, lo, hi)
	}
	t := T(n)
	return &t, nil
}

func parseBool(key, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, annotationError(key, v, `want "true" or "false"`)
}

// parseNames splits a comma-separated list of names, each checked with
// valid; duplicates are dropped. An empty value is an empty list.
func parseNames(key, v string, valid func(string) []string, what string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for n := range strings.SplitSeq(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if errs := valid(n); len(errs) > 0 {
			return nil, annotationError(key, v, "%q is not %s: %s", truncate(n), what, strings.Join(errs, "; "))
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

func parseQuantity(a map[string]string, key string) (*resource.Quantity, error) {
	v, ok := a[key]
	if !ok {
		return nil, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return nil, annotationError(key, v, "not a quantity (e.g. 100m, 64Mi): %v", err)
	}
	if q.Sign() <= 0 {
		return nil, annotationError(key, v, "must be positive")
	}
	return &q, nil
}

func validateImage(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > 1024:
		return fmt.Errorf("longer than 1024 characters")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("must not contain spaces or control characters")
	}
	return nil
}

func joinTargets(targets []tokens.Target) string {
	var b strings.Builder
	for i, t := range targets {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// canonicalTokenFiles checks a token file list by the sidecar's rule and
// writes it as ATHENZ_TOKEN_FILES; an empty list is "".
func canonicalTokenFiles(list string) (string, error) {
	if strings.TrimSpace(list) == "" {
		return "", nil
	}
	files, err := tokens.ParseTokenFiles(list)
	if err != nil {
		return "", err
	}
	return tokens.JoinTokenFiles(files), nil
}
