package identity

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/internal/problems"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Mode says how the identity is obtained (ATHENZ_IDENTITY_MODE).
type Mode string

// The identity modes.
const (
	// ModeCopperArgos generates a key, registers the Pod with ZTS
	// (POST /instance) using the service account token as attestation data,
	// and renews the certificate by refresh or by registering again.
	ModeCopperArgos Mode = "copper-argos"
	// ModeKeyFile signs N-tokens with the service's own key and gets the
	// certificate for that key from POST /instance/{domain}/{service}/refresh.
	ModeKeyFile Mode = "key-file"
	// ModeFiles uses a certificate and key that another tool writes
	// (cert-manager, a CSI driver) and reloads them when they change.
	ModeFiles Mode = "files"
)

// AttestationFormat is how the service account token is sent to ZTS
// (ATHENZ_ATTESTATION_FORMAT).
type AttestationFormat string

// The attestation formats.
const (
	// AttestationToken sends the bare JWT, for an HTTP provider such as the
	// injector's identity callback.
	AttestationToken AttestationFormat = "token"
	// AttestationIDTokenJSON sends {"identityToken":"<JWT>"}, for ZTS's
	// built-in Kubernetes provider.
	AttestationIDTokenJSON AttestationFormat = "id-token-json"
)

// Renewal is how a copper-argos certificate is renewed (ATHENZ_CERT_RENEWAL).
type Renewal string

// The renewal methods.
const (
	// RenewalRefresh calls POST /instance/{provider}/{domain}/{service}/{id}
	// over mTLS with the current certificate.
	RenewalRefresh Renewal = "refresh"
	// RenewalReregister registers again (POST /instance) with a fresh
	// service account token; ZTS's built-in Kubernetes provider refuses
	// refresh.
	RenewalReregister Renewal = "reregister"
)

// KeyFileCert says whether key-file mode needs its certificate
// (ATHENZ_KEY_FILE_CERT).
type KeyFileCert string

// The key-file certificate policies.
const (
	// KeyFileCertOptional asks ZTS for the certificate of the service key
	// and keeps it renewed, but the Manager is ready without it when ZTS
	// refuses it (a 4xx answer other than 401): the service key's
	// N-tokens authenticate to ZTS whatever ZTS does with the certificate.
	KeyFileCertOptional KeyFileCert = "optional"
	// KeyFileCertRequired makes the certificate part of readiness.
	KeyFileCertRequired KeyFileCert = "required"
	// KeyFileCertOff asks for no certificate: N-tokens only, as the
	// athenz-client-sidecar.
	KeyFileCertOff KeyFileCert = "off"
)

// KeyType is the type of the generated private key (ATHENZ_KEY_TYPE).
type KeyType string

// The key types.
const (
	KeyECDSA KeyType = "ecdsa" // ECDSA P-256
	KeyRSA   KeyType = "rsa"   // RSA 2048
)

// Defaults of Options.
const (
	DefaultMode              = ModeCopperArgos
	DefaultIdentityDir       = "/var/run/athenz"
	DefaultSATokenFile       = "/var/run/secrets/athenz.io/serviceaccount/token"
	DefaultAttestationFormat = AttestationToken
	DefaultRenewal           = RenewalRefresh
	DefaultKeyType           = KeyECDSA
	DefaultKeyFileCert       = KeyFileCertOptional
	DefaultRefreshFraction   = 2.0 / 3
	DefaultTimeout           = 10 * time.Second
	DefaultPollInterval      = 5 * time.Second
	DefaultRetryMin          = time.Second
	DefaultRetryMax          = time.Minute
	// DefaultKeyFileMode lets the owner and the group read the key: in a
	// Pod, the files are created with the Pod's fsGroup, so app containers
	// that share it (and run as another user) can read the key.
	DefaultKeyFileMode fs.FileMode = 0o640
	// CertFileMode is the mode of certificates and the CA bundle.
	CertFileMode fs.FileMode = 0o644
)

// Names of the files written in the identity directory.
const (
	CertFileName = "service.cert.pem" // leaf certificate and intermediates
	KeyFileName  = "service.key.pem"  // the certificate's private key
	CAFileName   = "ca.cert.pem"      // the CA bundle ZTS sent with the certificate
)

// RoleCertFileName is the file a role certificate is written to in the
// identity directory: "<domain>:role.<role>.cert.pem", as Athenz SIA names
// them. Role certificates use the identity's private key (KeyFileName).
func RoleCertFileName(t tokens.Target) string { return t.Domain + ":role." + t.Role + ".cert.pem" }

// Options configure a Manager. Each field names the environment variable
// pkg/sidecar fills it from; errors of Validate name that variable. The
// zero value of a field means its default.
type Options struct {
	// Mode is ATHENZ_IDENTITY_MODE. Default ModeCopperArgos.
	Mode Mode
	// ZTSURL is the ZTS base URL, https://host:4443/zts/v1 (ATHENZ_ZTS_URL).
	// Required.
	ZTSURL string
	// RootCAs are the CAs trusted for ZTS's server certificate. Default:
	// the certificates of ZTSCAFile, or the system roots.
	RootCAs *x509.CertPool
	// ZTSCAFile is a PEM bundle of CAs that sign ZTS's certificate
	// (ATHENZ_ZTS_CA_FILE). Ignored when RootCAs is set.
	ZTSCAFile string
	// Timeout bounds one call to ZTS (ATHENZ_ZTS_TIMEOUT). Default 10 s.
	Timeout time.Duration

	// Domain and Service are the Athenz identity (ATHENZ_DOMAIN,
	// ATHENZ_SERVICE). Required in copper-argos and key-file modes.
	Domain, Service string

	// Provider is the provider service ZTS asks to attest the Pod
	// (ATHENZ_PROVIDER). Required in copper-argos mode.
	Provider string
	// DNSSuffix is the DNS suffix of the certificate's SAN DNS names
	// (ATHENZ_DNS_SUFFIX). Required in copper-argos mode; optional in
	// key-file mode (without it the certificate has no SAN DNS name).
	DNSSuffix string
	// SATokenFile is the projected service account token, re-read before
	// every register and refresh (ATHENZ_SA_TOKEN_FILE). Default
	// DefaultSATokenFile. Copper-argos mode.
	SATokenFile string
	// TrustDomain, when set, makes the SAN URI
	// spiffe://<trust domain>/ns/<namespace>/sa/<domain>.<service>
	// (ATHENZ_TRUST_DOMAIN); it needs PodNamespace. Default: the older
	// spiffe://<domain>/sa/<service>.
	TrustDomain string
	// AttestationFormat is ATHENZ_ATTESTATION_FORMAT. Default
	// AttestationToken.
	AttestationFormat AttestationFormat
	// Renewal is ATHENZ_CERT_RENEWAL. Default RenewalRefresh.
	Renewal Renewal
	// Cloud is sent as InstanceRegisterInformation.cloud; ZTS's built-in
	// Kubernetes provider picks its distribution validator by it
	// (ATHENZ_CLOUD, optional).
	Cloud string
	// NToken asks ZTS for an N-token with every certificate (token: true)
	// and serves it from NTokenSource (ATHENZ_NTOKEN). Copper-argos mode.
	// ZTS gives the N-token a lifetime of its own (a day by default) and
	// a new one only with a certificate, so the certificate is renewed
	// ahead of whichever expires first, and a Manager that adopts an
	// identity renews it at once to get an N-token. Default false (the
	// sidecar's setting defaults to true).
	NToken bool
	// KeyFileCert is ATHENZ_KEY_FILE_CERT, key-file mode. Default
	// KeyFileCertOptional.
	KeyFileCert KeyFileCert

	// RefreshFraction is the part of a certificate's lifetime after which
	// it is renewed, counted from when it was obtained
	// (ATHENZ_CERT_REFRESH_FRACTION). Default 2/3; from 0.1 to 0.95.
	RefreshFraction float64
	// CertExpiry asks ZTS for certificates of this lifetime (expiryTime,
	// whole minutes; ZTS may give less) (ATHENZ_CERT_EXPIRY). Default: ZTS's.
	CertExpiry time.Duration
	// KeyType is the type of the generated key (ATHENZ_KEY_TYPE).
	// Default KeyECDSA. Copper-argos mode.
	KeyType KeyType
	// RotateKey generates a new key at every renewal (ATHENZ_ROTATE_KEY).
	// Default false: one key for the life of the process, so the key file
	// never changes and always matches the certificate file. With
	// RotateKey, the key is written before the certificate; a reader that
	// gets a pair that does not match should read both again.
	RotateKey bool

	// IdentityDir is where the certificate, key, CA bundle and role
	// certificates are written (ATHENZ_IDENTITY_DIR). Default
	// DefaultIdentityDir. It must exist.
	IdentityDir string
	// KeyFileMode is the mode of the key file (ATHENZ_IDENTITY_KEY_MODE,
	// octal). Default 0640. Group or other write or execute bits are
	// refused.
	KeyFileMode fs.FileMode

	// KeyFile is the service's private key in key-file mode, or the
	// certificate's key in files mode (ATHENZ_KEY_FILE).
	KeyFile string
	// KeyPEM, when set, is used instead of reading KeyFile (key-file mode;
	// dev mode passes a generated key).
	KeyPEM []byte
	// KeyVersion is the id of the service key in Athenz (ATHENZ_KEY_VERSION).
	// Required in key-file mode.
	KeyVersion string
	// CertFile is the certificate written by another tool, in files mode
	// (ATHENZ_CERT_FILE).
	CertFile string
	// CAFile is the CA bundle that issued CertFile, in files mode
	// (ATHENZ_CA_FILE, optional): read with the pair and written to
	// CAFileName.
	CAFile string
	// PollInterval is how often files mode looks for changed files.
	// Default 5 s.
	PollInterval time.Duration

	// RoleCerts lists role certificates to fetch and keep renewed
	// (ATHENZ_ROLE_CERTS, "<domain>:role.<role>,..."); ":domain" targets
	// are refused.
	RoleCerts []tokens.Target

	// PodUID is the Pod's UID, the instance id (POD_UID). Required in
	// copper-argos mode.
	PodUID string
	// PodIP is the Pod's IP, a SAN IP of the certificate (POD_IP). Default:
	// no SAN IP.
	PodIP string
	// PodNamespace is the Pod's namespace (POD_NAMESPACE), needed with
	// TrustDomain.
	PodNamespace string

	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between failed attempts. Defaults 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// Clock is the time source of renewals, retries and validity checks.
	// Default tokens.RealClock.
	Clock tokens.Clock
	// Skew measures ZTS's clock against the node's, shared with the token
	// client; certificates and N-tokens from ZTS are judged by ZTS's
	// clock. Default: a measurement of the Manager's own.
	Skew *tokens.ClockSkew
	// Logger receives one line per renewal and per failed attempt. Default:
	// discard.
	Logger logr.Logger
	// WrapTransport, when set, wraps the transport of the Manager's own
	// calls to ZTS (register, refresh, role certificates), e.g. to count
	// and time them. Transport() is not wrapped: its user can do that.
	// Default: none.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// WithDefaults returns o with every default filled in: what a Manager
// built from o runs with.
func (o Options) WithDefaults() Options { return o.withDefaults() }

// withDefaults returns o with every default filled in.
func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = DefaultMode
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.SATokenFile == "" {
		o.SATokenFile = DefaultSATokenFile
	}
	if o.AttestationFormat == "" {
		o.AttestationFormat = DefaultAttestationFormat
	}
	if o.Renewal == "" {
		o.Renewal = DefaultRenewal
	}
	if o.KeyType == "" {
		o.KeyType = DefaultKeyType
	}
	if o.KeyFileCert == "" {
		o.KeyFileCert = DefaultKeyFileCert
	}
	if o.RefreshFraction == 0 {
		o.RefreshFraction = DefaultRefreshFraction
	}
	if o.IdentityDir == "" {
		o.IdentityDir = DefaultIdentityDir
	}
	if o.KeyFileMode == 0 {
		o.KeyFileMode = DefaultKeyFileMode
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Clock == nil {
		o.Clock = tokens.RealClock{}
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return o
}

// Validate checks the options for their mode, with defaults applied. It
// reads the files they name (CA bundle, service account token, keys,
// certificate) so that a missing or broken file stops the sidecar at start.
// Every error names the environment variable to fix; several problems are
// joined.
func (o Options) Validate() error {
	_, err := o.validate()
	return err
}

// loaded is what validate read from files.
type loaded struct {
	roots   *x509.CertPool
	keyPEM  []byte        // key-file mode
	keyPair *filesContent // files mode
}

func (o Options) validate() (*loaded, error) {
	o = o.withDefaults()
	var found problems.List
	add := found.Addf
	out := &loaded{roots: o.RootCAs}

	switch o.Mode {
	case ModeCopperArgos, ModeKeyFile, ModeFiles:
	default:
		add("ATHENZ_IDENTITY_MODE=%q: want %s, %s or %s", o.Mode, ModeCopperArgos, ModeKeyFile, ModeFiles)
	}
	if o.ZTSURL == "" {
		add("ATHENZ_ZTS_URL is required (the ZTS base URL, https://host:4443/zts/v1)")
	} else if err := tokens.CheckZTSURL(o.ZTSURL); err != nil {
		add("ATHENZ_ZTS_URL=%q: %v", short(o.ZTSURL), err)
	}
	if out.roots == nil && o.ZTSCAFile != "" {
		b, err := os.ReadFile(o.ZTSCAFile)
		switch {
		case err != nil:
			add("ATHENZ_ZTS_CA_FILE: %v", err)
		default:
			out.roots = x509.NewCertPool()
			if !out.roots.AppendCertsFromPEM(b) {
				add("ATHENZ_ZTS_CA_FILE=%s: no PEM certificate found", o.ZTSCAFile)
			}
		}
	}
	needName := o.Mode == ModeCopperArgos || o.Mode == ModeKeyFile
	if needName || o.Domain != "" {
		if o.Domain == "" {
			add("ATHENZ_DOMAIN is required with ATHENZ_IDENTITY_MODE=%s", o.Mode)
		} else if err := tokens.ValidateDomain(o.Domain); err != nil {
			add("ATHENZ_DOMAIN: %v", err)
		}
	}
	if needName || o.Service != "" {
		if o.Service == "" {
			add("ATHENZ_SERVICE is required with ATHENZ_IDENTITY_MODE=%s", o.Mode)
		} else if err := tokens.ValidateService(o.Service); err != nil {
			add("ATHENZ_SERVICE: %v", err)
		}
	}
	if o.DNSSuffix != "" && !isDNSName(o.DNSSuffix) {
		add("ATHENZ_DNS_SUFFIX=%q: not a DNS name", short(o.DNSSuffix))
	}
	if o.TrustDomain != "" && !isDNSName(o.TrustDomain) {
		add("ATHENZ_TRUST_DOMAIN=%q: not a DNS name", short(o.TrustDomain))
	}
	if o.PodIP != "" && net.ParseIP(o.PodIP) == nil {
		add("POD_IP=%q: not an IP address", short(o.PodIP))
	}
	if o.RefreshFraction < 0.1 || o.RefreshFraction > 0.95 {
		add("ATHENZ_CERT_REFRESH_FRACTION=%v: want a number from 0.1 to 0.95", o.RefreshFraction)
	}
	if o.CertExpiry < 0 || (o.CertExpiry > 0 && o.CertExpiry < time.Minute) {
		add("ATHENZ_CERT_EXPIRY=%v: want at least 1m", o.CertExpiry)
	}
	if o.KeyFileMode&^0o644 != 0 || o.KeyFileMode&0o400 == 0 {
		add("ATHENZ_IDENTITY_KEY_MODE=%#o: the key must be readable by its owner and never writable by group or others, nor executable (e.g. 0600, 0640)", o.KeyFileMode)
	}
	for _, t := range o.RoleCerts {
		if t.Role == "" {
			add("ATHENZ_ROLE_CERTS: %s names no role: want <domain>:role.<role>", t)
		} else if err := tokens.ValidateDomain(t.Domain); err != nil {
			add("ATHENZ_ROLE_CERTS: %s: %v", t, err)
		} else if err := tokens.ValidateCompoundName(t.Role); err != nil {
			add("ATHENZ_ROLE_CERTS: %s: %v", t, err)
		}
	}
	if fi, err := os.Stat(o.IdentityDir); err != nil {
		add("ATHENZ_IDENTITY_DIR: %v", err)
	} else if !fi.IsDir() {
		add("ATHENZ_IDENTITY_DIR=%s: not a directory", o.IdentityDir)
	}

	switch o.Mode {
	case ModeCopperArgos:
		o.validateCopperArgos(&found)
	case ModeKeyFile:
		switch o.KeyFileCert {
		case KeyFileCertOptional, KeyFileCertRequired:
		case KeyFileCertOff:
			if len(o.RoleCerts) > 0 {
				add("ATHENZ_ROLE_CERTS needs the certificate of the service key: not with ATHENZ_KEY_FILE_CERT=off")
			}
		default:
			add("ATHENZ_KEY_FILE_CERT=%q: want %s, %s or %s", o.KeyFileCert, KeyFileCertOptional, KeyFileCertRequired, KeyFileCertOff)
		}
		if o.KeyVersion == "" {
			add("ATHENZ_KEY_VERSION is required with ATHENZ_IDENTITY_MODE=key-file (the id of the service's public key in Athenz)")
		} else if strings.ContainsAny(o.KeyVersion, ";= ") {
			add("ATHENZ_KEY_VERSION=%q: must not contain ';', '=' or spaces", short(o.KeyVersion))
		}
		keyPEM := o.KeyPEM
		if keyPEM == nil {
			if o.KeyFile == "" {
				add("ATHENZ_KEY_FILE is required with ATHENZ_IDENTITY_MODE=key-file (the service's private key)")
				break
			}
			var err error
			if keyPEM, err = os.ReadFile(o.KeyFile); err != nil {
				add("ATHENZ_KEY_FILE: %v", err)
				break
			}
		}
		if _, err := tokens.ParsePrivateKeyPEM(keyPEM); err != nil {
			add("ATHENZ_KEY_FILE=%s: %v", o.KeyFile, err)
			break
		}
		out.keyPEM = keyPEM
	case ModeFiles:
		if o.CertFile == "" {
			add("ATHENZ_CERT_FILE is required with ATHENZ_IDENTITY_MODE=files")
		}
		if o.KeyFile == "" {
			add("ATHENZ_KEY_FILE is required with ATHENZ_IDENTITY_MODE=files")
		}
		if o.CertFile != "" && o.KeyFile != "" {
			c, err := readFilesPair(o.CertFile, o.KeyFile)
			found.Add(err)
			out.keyPair = c
		}
	}
	if err := found.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (o Options) validateCopperArgos(found *problems.List) {
	add := found.Addf
	if o.Provider == "" {
		add("ATHENZ_PROVIDER is required with ATHENZ_IDENTITY_MODE=copper-argos (the provider service that attests the Pod, e.g. sys.auth.k8s)")
	} else if err := tokens.ValidateCompoundName(o.Provider); err != nil {
		add("ATHENZ_PROVIDER: %v", err)
	}
	if o.DNSSuffix == "" {
		add("ATHENZ_DNS_SUFFIX is required with ATHENZ_IDENTITY_MODE=copper-argos (the suffix ZTS expects in SAN DNS names)")
	}
	if o.PodUID == "" {
		add("POD_UID is required with ATHENZ_IDENTITY_MODE=copper-argos (the instance id; set it from the downward API, metadata.uid)")
	} else if !isInstanceID(o.PodUID) {
		add("POD_UID=%q: not a valid instance id (up to 63 letters, digits, '-' and '_')", short(o.PodUID))
	}
	if o.TrustDomain != "" && o.PodNamespace == "" {
		add("POD_NAMESPACE is required with ATHENZ_TRUST_DOMAIN (the SPIFFE URI names the namespace)")
	}
	switch o.AttestationFormat {
	case AttestationToken, AttestationIDTokenJSON:
	default:
		add("ATHENZ_ATTESTATION_FORMAT=%q: want %s or %s", o.AttestationFormat, AttestationToken, AttestationIDTokenJSON)
	}
	switch o.Renewal {
	case RenewalRefresh, RenewalReregister:
	default:
		add("ATHENZ_CERT_RENEWAL=%q: want %s or %s", o.Renewal, RenewalRefresh, RenewalReregister)
	}
	switch o.KeyType {
	case KeyECDSA, KeyRSA:
	default:
		add("ATHENZ_KEY_TYPE=%q: want %s or %s", o.KeyType, KeyECDSA, KeyRSA)
	}
	if o.Cloud != "" {
		if err := tokens.ValidateSimpleName(o.Cloud); err != nil {
			add("ATHENZ_CLOUD: %v", err)
		}
	}
	if _, err := readSAToken(o.SATokenFile); err != nil {
		found.Add(err)
	}
}

// readSAToken reads the service account token; errors name the variable
// and never show the token.
func readSAToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("ATHENZ_SA_TOKEN_FILE: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("ATHENZ_SA_TOKEN_FILE=%s: the file is empty", path)
	}
	return tok, nil
}

// filesContent is a certificate and key pair read in files mode.
type filesContent struct {
	pair    tls.Certificate
	certPEM []byte
	keyPEM  []byte
}

// readFilesPair reads and checks a certificate and its key.
func readFilesPair(certFile, keyFile string) (*filesContent, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_CERT_FILE: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls's errors name no key material.
		return nil, fmt.Errorf("ATHENZ_CERT_FILE=%s with ATHENZ_KEY_FILE=%s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("ATHENZ_CERT_FILE=%s: %w", certFile, err)
		}
	}
	return &filesContent{pair: pair, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// isDNSName reports whether s is a plausible DNS name: labels of letters,
// digits and '-', separated by dots.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// isInstanceID reports whether s can be an instance id: a ZTS PathElement
// that is also one DNS label (it is the first label of a SAN DNS name).
func isInstanceID(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// ParseRoleCerts parses ATHENZ_ROLE_CERTS, a comma-separated list of
// "<domain>:role.<role>" (tokens.ParseTargets); a "<domain>:domain" target
// is an error, since a role certificate names one role. Errors name the
// variable.
func ParseRoleCerts(list string) ([]tokens.Target, error) {
	targets, err := tokens.ParseTargets(list)
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_ROLE_CERTS: %w", err)
	}
	for _, t := range targets {
		if t.Role == "" {
			return nil, fmt.Errorf("ATHENZ_ROLE_CERTS: %s names no role: a role certificate is for one role, want <domain>:role.<role>", t)
		}
	}
	return targets, nil
}

// short keeps echoed values short in error messages.
func short(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
