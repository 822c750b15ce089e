package webhook

import (
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Defaults for what a SidecarProfile leaves unset.
const (
	DefaultTokenAudience = "athenz"
	DefaultAPIPort       = 8081
	DefaultHealthPort    = 8082
	DefaultKeyVersion    = "0"
	defaultCertKey       = "tls.crt"
	defaultKeyKey        = "tls.key"
)

// defaultResources are the sidecar's resources when the profile sets none:
// requests cpu 10m and memory 32Mi, limit memory 64Mi.
func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("10m"),
			corev1.ResourceMemory: resource.MustParse("32Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
	}
}

// config is a SidecarProfile with its defaults filled in and its values
// checked, ready to be combined with one Pod's annotations.
type config struct {
	profile    string // namespace/name, for status and messages
	generation int64  // the profile's metadata.generation
	ztsURL     string
	ca         *v1alpha1.CABundle
	// caCopy: the profile is cluster-wide (in the injector's namespace),
	// so Pods mount the injector's copy of its CA bundle, caCopyName.
	caCopy      bool
	caCopyName  string
	mode        v1alpha1.IdentityMode
	provider    string
	dnsSuffix   string
	audience    string
	trustDomain string
	attestation v1alpha1.AttestationFormat
	renewal     v1alpha1.CertRenewal
	keyFile     v1alpha1.KeyFileIdentity
	files       v1alpha1.FilesIdentity
	image       string
	pullPolicy  corev1.PullPolicy
	resources   corev1.ResourceRequirements
	apiPort     int32
	healthPort  int32
	native      bool
	denyHostNet bool
	prefetch    string // canonical target list
	tokenFiles  string // canonical token file list
	tlsHosts    string // ATHENZ_PROXY_TLS_HOSTS
	proxyHosts  string
	runAsUser   int64
	runAsGroup  int64
	initOnly    bool
	pullSecrets []string
	placement   v1alpha1.SidecarPlacement
	// shutdownDelay is the preStop sleep of a sidecar that is a regular
	// container (nativeSidecar: Never), in seconds.
	shutdownDelay int32
	containers    []string // nil: every container but the mesh's
	revision      string
}

// DefaultShutdownDelaySeconds is sidecar.shutdownDelaySeconds when the
// profile sets none: long enough for an app's shutdown to ask for a token,
// short against the default 30 s grace period.
const DefaultShutdownDelaySeconds = 5

// ValidateProfile reports what makes a profile unusable, naming the field.
// It checks what the CRD schema cannot (the naming templates and prefetch
// targets, with the rules of pkg/tokens that the sidecar applies at start)
// and repeats the schema's own rules, so that a profile that slipped past
// them is refused here rather than injected as a sidecar that cannot start.
func ValidateProfile(p *v1alpha1.SidecarProfile) error {
	_, err := resolveProfile(p, Settings{})
	return err
}

func resolveProfile(p *v1alpha1.SidecarProfile, s Settings) (config, error) {
	spec := &p.Spec
	c := config{
		profile:       p.Namespace + "/" + p.Name,
		generation:    p.Generation,
		ztsURL:        spec.ZTS.URL,
		ca:            spec.ZTS.CA,
		caCopy:        spec.ZTS.CA != nil && s.Namespace != "" && p.Namespace == s.Namespace,
		caCopyName:    ZTSCACopyName(p.Name),
		mode:          spec.Identity.Mode,
		provider:      spec.Identity.Provider,
		dnsSuffix:     spec.Identity.DNSSuffix,
		audience:      spec.Identity.TokenAudience,
		trustDomain:   spec.Identity.TrustDomain,
		attestation:   spec.Identity.AttestationFormat,
		renewal:       spec.Identity.CertRenewal,
		image:         spec.Sidecar.Image,
		pullPolicy:    spec.Sidecar.ImagePullPolicy,
		apiPort:       spec.Sidecar.Ports.API,
		healthPort:    spec.Sidecar.Ports.Health,
		native:        spec.Sidecar.NativeSidecar != v1alpha1.NativeSidecarNever,
		denyHostNet:   spec.Sidecar.HostNetwork == v1alpha1.HostNetworkDeny,
		proxyHosts:    strings.Join(spec.ProxyAllowedHosts, ","),
		runAsUser:     sidecarUID,
		runAsGroup:    sidecarUID,
		initOnly:      spec.Sidecar.InitOnly,
		placement:     spec.Sidecar.Placement,
		containers:    spec.InjectContainers,
		revision:      spec.Revision,
		shutdownDelay: DefaultShutdownDelaySeconds,
	}
	bad := func(field, format string, args ...any) (config, error) {
		return config{}, denyf("SidecarProfile %s: spec.%s: %s", c.profile, field, fmt.Sprintf(format, args...))
	}

	u, err := url.Parse(c.ztsURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return bad("zts.url", "%q is not an https:// URL", truncate(c.ztsURL))
	}
	if c.ca != nil && (c.ca.ConfigMap == nil) == (c.ca.Secret == nil) {
		return bad("zts.ca", "set exactly one of configMap and secret")
	}

	if c.mode == "" {
		c.mode = v1alpha1.IdentityCopperArgos
	}
	id := &spec.Identity
	switch c.mode {
	case v1alpha1.IdentityCopperArgos:
		if c.provider == "" {
			return bad("identity.provider", "required in copper-argos mode")
		}
		if err := tokens.ValidateCompoundName(c.provider); err != nil {
			return bad("identity.provider", "%v", err)
		}
		if c.dnsSuffix == "" {
			return bad("identity.dnsSuffix", "required in copper-argos mode")
		}
	case v1alpha1.IdentityKeyFile:
		if id.KeyFile == nil || id.KeyFile.Secret.Name == "" || id.KeyFile.Secret.Key == "" {
			return bad("identity.keyFile", "secret name and key are required in key-file mode")
		}
		c.keyFile = *id.KeyFile
		if c.keyFile.Version == "" {
			c.keyFile.Version = DefaultKeyVersion
		}
	case v1alpha1.IdentityFiles:
		if id.Files == nil || id.Files.SecretName == "" {
			return bad("identity.files", "secretName is required in files mode")
		}
		c.files = *id.Files
		if c.files.CertKey == "" {
			c.files.CertKey = defaultCertKey
		}
		if c.files.KeyKey == "" {
			c.files.KeyKey = defaultKeyKey
		}
	default:
		return bad("identity.mode", "%q is not one of copper-argos, key-file, files", c.mode)
	}
	if id.KeyFile != nil && c.mode != v1alpha1.IdentityKeyFile {
		return bad("identity.keyFile", "only used in key-file mode")
	}
	if id.Files != nil && c.mode != v1alpha1.IdentityFiles {
		return bad("identity.files", "only used in files mode")
	}
	if c.audience == "" {
		c.audience = DefaultTokenAudience
	}
	switch c.attestation {
	case "":
		c.attestation = v1alpha1.AttestationToken
	case v1alpha1.AttestationToken, v1alpha1.AttestationIDTokenJSON:
	default:
		return bad("identity.attestationFormat", "%q is not one of token, id-token-json", c.attestation)
	}
	switch c.renewal {
	case "":
		c.renewal = v1alpha1.RenewalRefresh
	case v1alpha1.RenewalRefresh, v1alpha1.RenewalReregister:
	default:
		return bad("identity.certRenewal", "%q is not one of refresh, reregister", c.renewal)
	}

	if err := Naming(p).Validate(); err != nil {
		field := "domainTemplate"
		if strings.HasPrefix(err.Error(), "service") {
			field = "serviceTemplate"
		}
		return bad(field, "%v", err)
	}
	if field, err := validatePolicy(&spec.IdentityPolicy); err != nil {
		return bad("identityPolicy."+field, "%v", err)
	}

	if c.image == "" {
		c.image = s.image()
	} else if err := validateImage(c.image); err != nil {
		return bad("sidecar.image", "%v", err)
	}
	if spec.Sidecar.Resources != nil {
		c.resources = *spec.Sidecar.Resources.DeepCopy()
	} else {
		c.resources = defaultResources()
	}
	for name, req := range c.resources.Requests {
		if lim, ok := c.resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			return bad("sidecar.resources", "request %s of %s is above its limit %s", req.String(), name, lim.String())
		}
	}
	if c.apiPort == 0 {
		c.apiPort = DefaultAPIPort
	}
	if c.healthPort == 0 {
		c.healthPort = DefaultHealthPort
	}
	if c.apiPort == c.healthPort {
		return bad("sidecar.ports", "api and health are both %d", c.apiPort)
	}
	if n := spec.Sidecar.NativeSidecar; n != "" && n != v1alpha1.NativeSidecarAlways && n != v1alpha1.NativeSidecarNever {
		return bad("sidecar.nativeSidecar", "%q is not one of Always, Never", n)
	}
	if h := spec.Sidecar.HostNetwork; h != "" && h != v1alpha1.HostNetworkSocket && h != v1alpha1.HostNetworkDeny {
		return bad("sidecar.hostNetwork", "%q is not one of socket, deny", h)
	}

	if u := spec.Sidecar.RunAsUser; u != nil {
		if *u < 1 || *u > maxID {
			return bad("sidecar.runAsUser", "%d is not a user ID other than root's (1-%d)", *u, maxID)
		}
		c.runAsUser = *u
	}
	if g := spec.Sidecar.RunAsGroup; g != nil {
		if *g < 0 || *g > maxID {
			return bad("sidecar.runAsGroup", "%d is not a group ID (0-%d)", *g, maxID)
		}
		c.runAsGroup = *g
	}
	for _, ps := range spec.Sidecar.ImagePullSecrets {
		if errs := validation.IsDNS1123Subdomain(ps.Name); len(errs) > 0 {
			return bad("sidecar.imagePullSecrets", "%q is not a Secret name: %s", truncate(ps.Name), strings.Join(errs, "; "))
		}
		c.pullSecrets = append(c.pullSecrets, ps.Name)
	}
	switch c.placement {
	case "":
		c.placement = v1alpha1.PlacementAuto
	case v1alpha1.PlacementAuto, v1alpha1.PlacementFirst, v1alpha1.PlacementLast:
	default:
		return bad("sidecar.placement", "%q is not one of Auto, First, Last", c.placement)
	}
	if d := spec.Sidecar.ShutdownDelaySeconds; d != nil {
		if *d < 0 || *d > maxShutdownDelay {
			return bad("sidecar.shutdownDelaySeconds", "%d is not from 0 to %d", *d, maxShutdownDelay)
		}
		c.shutdownDelay = *d
	}
	for _, n := range c.containers {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return bad("injectContainers", "%q is not a container name: %s", truncate(n), strings.Join(errs, "; "))
		}
	}
	if c.revision != "" {
		if errs := validation.IsDNS1123Label(c.revision); len(errs) > 0 {
			return bad("revision", "%q is not a label value: %s", truncate(c.revision), strings.Join(errs, "; "))
		}
	}
	if c.mode == v1alpha1.IdentityFiles && c.files.CAKey != "" {
		if errs := validation.IsConfigMapKey(c.files.CAKey); len(errs) > 0 {
			return bad("identity.files.caKey", "%s", strings.Join(errs, "; "))
		}
	}

	targets, err := tokens.ParseTargets(strings.Join(spec.Prefetch, ","))
	if err != nil {
		return bad("prefetch", "%v", err)
	}
	c.prefetch = joinTargets(targets)
	if c.tokenFiles, err = canonicalTokenFiles(strings.Join(spec.TokenFiles, ",")); err != nil {
		return bad("tokenFiles", "%v", err)
	}
	c.tlsHosts = strings.Join(spec.ProxyTLSHosts, ",")
	for _, l := range []struct {
		field string
		hosts []string
	}{{"proxyAllowedHosts", spec.ProxyAllowedHosts}, {"proxyTLSHosts", spec.ProxyTLSHosts}} {
		for _, h := range l.hosts {
			if strings.Contains(h, ",") {
				return bad(l.field, "%q: one host per item", truncate(h))
			}
			if _, err := tokens.ParseHostList(h); err != nil {
				return bad(l.field, "%v", err)
			}
		}
	}
	return c, nil
}
