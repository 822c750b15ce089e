package sidecar

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/internal/problems"
	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// IdentityMode says how the sidecar gets its Athenz identity
// (ATHENZ_IDENTITY_MODE).
type IdentityMode string

// The identity modes.
const (
	// IdentityCopperArgos registers the Pod with ZTS and rotates its
	// certificate. It is the default outside dev mode.
	IdentityCopperArgos IdentityMode = "copper-argos"
	// IdentityKeyFile signs N-tokens with a service key from a file and
	// authenticates to ZTS with them.
	IdentityKeyFile IdentityMode = "key-file"
	// IdentityFiles uses a certificate and key that something else writes
	// (cert-manager, a CSI driver) for mTLS to ZTS.
	IdentityFiles IdentityMode = "files"
)

// What Run does (the --mode flag).
const (
	// ModeServe serves the token API until the context ends.
	ModeServe = "serve"
	// ModeInit gets the identity once and exits (an init container for
	// clusters without native sidecars).
	ModeInit = "init"
)

// Defaults of the environment settings.
const (
	DefaultListen = "127.0.0.1:8081"
	// ListenOff as ATHENZ_LISTEN serves the token API on ATHENZ_SOCKET only.
	ListenOff              = "off"
	DefaultHealthListen    = ":8082"
	DefaultZTSTimeout      = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultLogLevel        = "info"
	// DefaultProxyTimeout bounds the wait for an upstream's answer
	// (headers) through the proxy.
	DefaultProxyTimeout = 30 * time.Second
	// DefaultProxyDialTimeout bounds connecting to an upstream.
	DefaultProxyDialTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a request's headers, and a token
	// request's body.
	DefaultReadTimeout = 10 * time.Second
	// DefaultIdleTimeout closes kept-alive client connections idle this
	// long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConnections bounds the connections each listener serves at
	// once; more wait to be accepted.
	DefaultMaxConnections = 512
)

// Config is the sidecar's configuration, parsed once from the environment by
// ConfigFromEnv; the flags set Mode and Dev. Empty values mean "unset".
type Config struct {
	// Mode is ModeServe (default) or ModeInit.
	Mode string
	// Dev runs an in-process fake ZTS and a generated service key, so the
	// API can be tried with no Athenz at hand (--dev).
	Dev bool

	// ZTSURL is the ZTS base URL, https://host:4443/zts/v1 (ATHENZ_ZTS_URL).
	ZTSURL string
	// ZTSCAFile is a PEM bundle of the CAs that sign ZTS's certificate
	// (ATHENZ_ZTS_CA_FILE). Default: the system roots.
	ZTSCAFile string
	// ZTSTimeout bounds one call to ZTS (ATHENZ_ZTS_TIMEOUT, a Go duration
	// or seconds). Default: DefaultZTSTimeout.
	ZTSTimeout time.Duration

	// IdentityMode is ATHENZ_IDENTITY_MODE; empty means IdentityCopperArgos,
	// or IdentityKeyFile in dev mode (see EffectiveIdentityMode).
	IdentityMode IdentityMode
	// Domain and Service are the Pod's Athenz identity (ATHENZ_DOMAIN,
	// ATHENZ_SERVICE).
	Domain, Service string
	// KeyFile is the private key: the service key in key-file mode, the
	// certificate's key in files mode (ATHENZ_KEY_FILE).
	KeyFile string
	// KeyVersion is the id of the service key's public key in Athenz
	// (ATHENZ_KEY_VERSION, key-file mode).
	KeyVersion string
	// CertFile is the certificate for mTLS to ZTS (ATHENZ_CERT_FILE, files
	// mode).
	CertFile string
	// CAFile is the CA bundle that issued CertFile (ATHENZ_CA_FILE, files
	// mode, optional): copied to ca.cert.pem in IdentityDir with the pair,
	// so that apps find the CA where every mode puts it.
	CAFile string
	// IdentityDir is where certificate, key and CA are written
	// (ATHENZ_IDENTITY_DIR). Default: /var/run/athenz.
	IdentityDir string
	// CopperArgos holds the copper-argos settings.
	CopperArgos CopperArgosConfig
	// Certificate holds the identity certificate settings of every mode.
	Certificate CertificateConfig
	// Pod is the Pod's downward-API information.
	Pod PodInfo

	// Listen is the token API's address (ATHENZ_LISTEN). Default:
	// DefaultListen. A non-loopback address needs ListenAllowRemote.
	// ListenOff ("off") serves the token API on ATHENZ_SOCKET only: on
	// the host network loopback is the node's, shared by every process
	// there, so the injector turns TCP off for hostNetwork Pods.
	Listen string
	// ListenAllowRemote lets the token API and the proxies listen on a
	// non-loopback address (ATHENZ_LISTEN_ALLOW_REMOTE).
	ListenAllowRemote bool
	// HealthListen is the address of /healthz, /readyz and /metrics
	// (ATHENZ_HEALTH_LISTEN). Default: DefaultHealthListen. ListenOff
	// ("off") opens no health port: /healthz and /readyz are then served
	// on ATHENZ_SOCKET only (hostNetwork Pods, where a port is the node's
	// and two Pods on one node would want the same one), and `sidecar
	// probe` asks there.
	HealthListen string
	// Socket, when set, is a Unix socket path that serves the token API too
	// (ATHENZ_SOCKET).
	Socket string
	// Prefetch lists access tokens fetched before the sidecar reports ready
	// and kept warm (ATHENZ_PREFETCH, e.g. "prov:role.reader,other:domain").
	Prefetch []tokens.Target
	// PrefetchRoleTokens is the same for role tokens
	// (ATHENZ_PREFETCH_ROLE_TOKENS).
	PrefetchRoleTokens []tokens.Target
	// TokenFiles lists tokens kept as files under IdentityDir/tokens for
	// apps that read files (ATHENZ_TOKEN_FILES,
	// "accesstoken:<domain>:role.<role>,roletoken:<domain>:role.<role>").
	// They are fetched before the sidecar reports ready and refreshed
	// with the cache's schedule.
	TokenFiles []TokenFile
	// ProxyAllowedHosts lists the upstream hosts ("host", "host:port" or
	// "*.domain") the proxy may send tokens to (ATHENZ_PROXY_ALLOWED_HOSTS).
	// Empty: every host.
	ProxyAllowedHosts []string
	// ProxyTLSHosts lists the upstream hosts, in the syntax of
	// ProxyAllowedHosts plus "*" and "*:port", that the proxy calls over
	// TLS when the app sends an http:// request (ATHENZ_PROXY_TLS_HOSTS).
	// Empty: none; an app can still ask per request (Athenz-Upstream-TLS).
	ProxyTLSHosts []string
	// ProxyTLSCA lists the CAs the proxy trusts for upstream certificates
	// (ATHENZ_PROXY_TLS_CA): CASystem, CAZTS, CAIdentity, or absolute
	// paths of PEM bundles, reloaded when they change. Empty:
	// DefaultProxyTLSCA.
	ProxyTLSCA []string
	// ProxyNTokenListen and ProxyRoleTokenListen are optional addresses of
	// proxies that serve only one kind of token (ATHENZ_PROXY_NTOKEN_LISTEN,
	// ATHENZ_PROXY_ROLETOKEN_LISTEN).
	ProxyNTokenListen, ProxyRoleTokenListen string
	// LogLevel is debug, info, warn or error (ATHENZ_LOG_LEVEL). Default:
	// DefaultLogLevel.
	LogLevel string

	// ProxyTimeout bounds the wait for an upstream's answer through the
	// proxy, from the request sent to the response headers; past it the
	// app gets 504 (ATHENZ_PROXY_TIMEOUT). Default: DefaultProxyTimeout.
	ProxyTimeout time.Duration
	// ProxyDialTimeout bounds connecting to an upstream
	// (ATHENZ_PROXY_DIAL_TIMEOUT). Default: DefaultProxyDialTimeout.
	ProxyDialTimeout time.Duration
	// ReadTimeout bounds reading a request's headers, and a token
	// request's body (ATHENZ_READ_TIMEOUT). Proxied bodies stream to the
	// upstream without it. Default: DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes client connections kept alive this long without a
	// request (ATHENZ_IDLE_TIMEOUT). Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConnections bounds the connections each listener serves at once
	// (ATHENZ_MAX_CONNECTIONS); more wait in the kernel's backlog until
	// one closes. Default: DefaultMaxConnections.
	MaxConnections int

	// ShutdownTimeout bounds the drain of in-flight requests after the
	// context ends (ATHENZ_SHUTDOWN_TIMEOUT). Default:
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Clock drives the token cache and the N-token signer. Default:
	// tokens.RealClock. Not from the environment.
	Clock tokens.Clock
}

// CopperArgosConfig holds the settings of the copper-argos identity mode.
type CopperArgosConfig struct {
	Provider          string // ATHENZ_PROVIDER
	DNSSuffix         string // ATHENZ_DNS_SUFFIX
	SATokenFile       string // ATHENZ_SA_TOKEN_FILE
	TrustDomain       string // ATHENZ_TRUST_DOMAIN
	AttestationFormat string // ATHENZ_ATTESTATION_FORMAT: "token" or "id-token-json"
	CertRenewal       string // ATHENZ_CERT_RENEWAL: "refresh" or "reregister"
	Cloud             string // ATHENZ_CLOUD: sent to ZTS as the instance's cloud
	KeyType           string // ATHENZ_KEY_TYPE: "ecdsa" (default) or "rsa"
	RotateKey         bool   // ATHENZ_ROTATE_KEY: a new key with every certificate
	// NToken asks ZTS for an N-token with every certificate, served at
	// /ntoken (ATHENZ_NTOKEN). Default true, so /ntoken works in every mode.
	NToken *bool
}

// KeyFileCert is ATHENZ_KEY_FILE_CERT: whether key-file mode needs the
// certificate of its service key to be ready (identity.KeyFileCert).
type KeyFileCert = identity.KeyFileCert

// CertificateConfig holds the settings of the identity certificate that
// apply to every identity mode.
type CertificateConfig struct {
	// RefreshFraction of the lifetime after which the certificate is
	// renewed (ATHENZ_CERT_REFRESH_FRACTION). Default 2/3.
	RefreshFraction float64
	// Expiry asked of ZTS for each certificate (ATHENZ_CERT_EXPIRY).
	// Default: ZTS's.
	Expiry time.Duration
	// KeyFileMode of service.key.pem (ATHENZ_IDENTITY_KEY_MODE, octal).
	// Default 0640.
	KeyFileMode fs.FileMode
	// RoleCerts are role certificates kept in the identity directory
	// (ATHENZ_ROLE_CERTS, "<domain>:role.<role>,...").
	RoleCerts []tokens.Target
	// KeyFileCert is ATHENZ_KEY_FILE_CERT (key-file mode): optional (the
	// default), required or off.
	KeyFileCert KeyFileCert
}

// PodInfo is what the downward API tells the sidecar about its Pod (POD_NAME,
// POD_NAMESPACE, POD_UID, POD_IP, SERVICE_ACCOUNT).
type PodInfo struct {
	Name, Namespace, UID, IP, ServiceAccount string
}

// envVar describes one ATHENZ_* variable: how to store it in a Config.
type envVar struct {
	name  string
	parse func(c *Config, v string) error
}

func str(dst func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

// duration parses a Go duration or a number of seconds, more than 0 and at
// most limit.
func duration(dst func(c *Config) *time.Duration, limit time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := parseSeconds(v)
		if err == nil && (d <= 0 || d > limit) {
			err = fmt.Errorf("must be more than 0 and at most %v", limit)
		}
		*dst(c) = d
		return err
	}
}

func boolean(dst func(c *Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) (err error) {
		if *dst(c), err = strconv.ParseBool(v); err != nil {
			return errors.New("want true or false")
		}
		return nil
	}
}

// envVars is the list of variables the sidecar knows; any other ATHENZ_*
// variable is an error, so a typo does not go unnoticed.
var envVars = []envVar{
	{"ATHENZ_ZTS_URL", str(func(c *Config) *string { return &c.ZTSURL })},
	{"ATHENZ_ZTS_CA_FILE", str(func(c *Config) *string { return &c.ZTSCAFile })},
	{"ATHENZ_ZTS_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.ZTSTimeout }, 5*time.Minute)},
	{"ATHENZ_IDENTITY_MODE", func(c *Config, v string) error {
		c.IdentityMode = IdentityMode(v)
		switch c.IdentityMode {
		case IdentityCopperArgos, IdentityKeyFile, IdentityFiles:
			return nil
		}
		return fmt.Errorf("want %s, %s or %s", IdentityCopperArgos, IdentityKeyFile, IdentityFiles)
	}},
	{"ATHENZ_DOMAIN", func(c *Config, v string) error { c.Domain = v; return tokens.ValidateDomain(v) }},
	{"ATHENZ_SERVICE", func(c *Config, v string) error { c.Service = v; return tokens.ValidateService(v) }},
	{"ATHENZ_KEY_FILE", str(func(c *Config) *string { return &c.KeyFile })},
	{"ATHENZ_KEY_VERSION", func(c *Config, v string) error {
		c.KeyVersion = v
		if strings.ContainsAny(v, ";= \t") {
			return errors.New("must not contain ';', '=' or spaces")
		}
		return nil
	}},
	{"ATHENZ_CERT_FILE", str(func(c *Config) *string { return &c.CertFile })},
	{"ATHENZ_CA_FILE", str(func(c *Config) *string { return &c.CAFile })},
	{"ATHENZ_IDENTITY_DIR", str(func(c *Config) *string { return &c.IdentityDir })},
	{"ATHENZ_PROVIDER", func(c *Config, v string) error {
		c.CopperArgos.Provider = v
		return tokens.ValidateCompoundName(v)
	}},
	{"ATHENZ_DNS_SUFFIX", str(func(c *Config) *string { return &c.CopperArgos.DNSSuffix })},
	{"ATHENZ_SA_TOKEN_FILE", str(func(c *Config) *string { return &c.CopperArgos.SATokenFile })},
	{"ATHENZ_TRUST_DOMAIN", str(func(c *Config) *string { return &c.CopperArgos.TrustDomain })},
	{"ATHENZ_ATTESTATION_FORMAT", func(c *Config, v string) error {
		c.CopperArgos.AttestationFormat = v
		if v != "token" && v != "id-token-json" {
			return errors.New("want token or id-token-json")
		}
		return nil
	}},
	{"ATHENZ_CERT_RENEWAL", func(c *Config, v string) error {
		c.CopperArgos.CertRenewal = v
		if v != "refresh" && v != "reregister" {
			return errors.New("want refresh or reregister")
		}
		return nil
	}},
	{"ATHENZ_CLOUD", str(func(c *Config) *string { return &c.CopperArgos.Cloud })},
	{"ATHENZ_KEY_TYPE", func(c *Config, v string) error {
		c.CopperArgos.KeyType = v
		if v != string(identity.KeyECDSA) && v != string(identity.KeyRSA) {
			return errors.New("want ecdsa or rsa")
		}
		return nil
	}},
	{"ATHENZ_ROTATE_KEY", boolean(func(c *Config) *bool { return &c.CopperArgos.RotateKey })},
	{"ATHENZ_NTOKEN", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.CopperArgos.NToken = &b
		return nil
	}},
	{"ATHENZ_CERT_REFRESH_FRACTION", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0.1 || f > 0.95 {
			return errors.New("want a number from 0.1 to 0.95")
		}
		c.Certificate.RefreshFraction = f
		return nil
	}},
	{"ATHENZ_CERT_EXPIRY", func(c *Config, v string) (err error) {
		c.Certificate.Expiry, err = parseSeconds(v)
		if err == nil && c.Certificate.Expiry < time.Minute {
			err = errors.New("must be at least 1m")
		}
		return err
	}},
	{"ATHENZ_IDENTITY_KEY_MODE", func(c *Config, v string) error {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m > 0o777 {
			return errors.New("want an octal file mode such as 0640")
		}
		if m&0o022 != 0 {
			return errors.New("the key must not be group- or world-writable")
		}
		c.Certificate.KeyFileMode = fs.FileMode(m)
		return nil
	}},
	{"ATHENZ_ROLE_CERTS", func(c *Config, v string) (err error) {
		c.Certificate.RoleCerts, err = identity.ParseRoleCerts(v)
		return err
	}},
	{"ATHENZ_LISTEN", str(func(c *Config) *string { return &c.Listen })},
	{"ATHENZ_LISTEN_ALLOW_REMOTE", boolean(func(c *Config) *bool { return &c.ListenAllowRemote })},
	{"ATHENZ_HEALTH_LISTEN", str(func(c *Config) *string { return &c.HealthListen })},
	{"ATHENZ_SOCKET", func(c *Config, v string) error {
		c.Socket = v
		if !filepath.IsAbs(v) {
			return errors.New("must be an absolute path")
		}
		return nil
	}},
	{"ATHENZ_PREFETCH", func(c *Config, v string) (err error) {
		c.Prefetch, err = tokens.ParseTargets(v)
		return err
	}},
	{"ATHENZ_PREFETCH_ROLE_TOKENS", func(c *Config, v string) (err error) {
		c.PrefetchRoleTokens, err = tokens.ParseTargets(v)
		return err
	}},
	{"ATHENZ_TOKEN_FILES", func(c *Config, v string) (err error) {
		c.TokenFiles, err = tokens.ParseTokenFiles(v)
		return err
	}},
	{"ATHENZ_PROXY_ALLOWED_HOSTS", func(c *Config, v string) (err error) {
		c.ProxyAllowedHosts, err = parseHostList(v)
		return err
	}},
	{"ATHENZ_PROXY_TLS_HOSTS", func(c *Config, v string) (err error) {
		c.ProxyTLSHosts, err = parseHostList(v)
		return err
	}},
	{"ATHENZ_PROXY_TLS_CA", func(c *Config, v string) (err error) {
		c.ProxyTLSCA, err = parseCAList(v)
		return err
	}},
	{"ATHENZ_PROXY_NTOKEN_LISTEN", str(func(c *Config) *string { return &c.ProxyNTokenListen })},
	{"ATHENZ_PROXY_ROLETOKEN_LISTEN", str(func(c *Config) *string { return &c.ProxyRoleTokenListen })},
	{"ATHENZ_KEY_FILE_CERT", func(c *Config, v string) error {
		c.Certificate.KeyFileCert = KeyFileCert(v)
		switch c.Certificate.KeyFileCert {
		case identity.KeyFileCertOptional, identity.KeyFileCertRequired, identity.KeyFileCertOff:
			return nil
		}
		return fmt.Errorf("want %s, %s or %s", identity.KeyFileCertOptional, identity.KeyFileCertRequired, identity.KeyFileCertOff)
	}},
	{"ATHENZ_PROXY_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.ProxyTimeout }, time.Hour)},
	{"ATHENZ_PROXY_DIAL_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.ProxyDialTimeout }, 5*time.Minute)},
	{"ATHENZ_READ_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.ReadTimeout }, 5*time.Minute)},
	{"ATHENZ_IDLE_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.IdleTimeout }, time.Hour)},
	{"ATHENZ_SHUTDOWN_TIMEOUT", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 10*time.Minute)},
	{"ATHENZ_MAX_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20 {
			return errors.New("want a whole number from 1 to 1048576")
		}
		c.MaxConnections = n
		return nil
	}},
	{"ATHENZ_LOG_LEVEL", func(c *Config, v string) error {
		c.LogLevel = strings.ToLower(v)
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
			return errors.New("want debug, info, warn or error")
		}
		return nil
	}},
}

// appContainerVars are set by the injector on app containers, not on the
// sidecar; finding one here means a copy-paste mistake.
var appContainerVars = []string{"ATHENZ_SIDECAR_URL", "ATHENZ_CA_FILE"}

// ConfigFromEnv parses the sidecar's settings from environ, given as
// os.Environ returns it ("KEY=value"). Empty values count as unset; the
// defaults are filled in. An unknown ATHENZ_* variable or a value that does
// not parse is an error naming the variable; all such errors are returned
// together. Checks that involve several settings, or the flags, are in
// Validate.
//
// It takes the whole environment rather than a lookup function because
// finding unknown variables needs their names.
func ConfigFromEnv(environ []string) (Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; !dup { // the first one wins, as in os.Getenv
			env[k] = v
		}
	}
	c := Config{
		Mode:             ModeServe,
		ZTSTimeout:       DefaultZTSTimeout,
		Listen:           DefaultListen,
		HealthListen:     DefaultHealthListen,
		LogLevel:         DefaultLogLevel,
		ShutdownTimeout:  DefaultShutdownTimeout,
		ProxyTimeout:     DefaultProxyTimeout,
		ProxyDialTimeout: DefaultProxyDialTimeout,
		ReadTimeout:      DefaultReadTimeout,
		IdleTimeout:      DefaultIdleTimeout,
		MaxConnections:   DefaultMaxConnections,
		Pod: PodInfo{
			Name: env["POD_NAME"], Namespace: env["POD_NAMESPACE"], UID: env["POD_UID"],
			IP: env["POD_IP"], ServiceAccount: env["SERVICE_ACCOUNT"],
		},
	}
	var errs []error
	for _, ev := range envVars {
		v := env[ev.name]
		if v == "" {
			continue
		}
		if err := ev.parse(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", ev.name, truncate(v), err))
		}
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !strings.HasPrefix(k, "ATHENZ_") || knownVar(k) {
			continue
		}
		errs = append(errs, unknownVarError(k))
	}
	return c, errors.Join(errs...)
}

func knownVar(name string) bool {
	return slices.ContainsFunc(envVars, func(ev envVar) bool { return ev.name == name })
}

func unknownVarError(name string) error {
	if slices.Contains(appContainerVars, name) {
		return fmt.Errorf("%s: unknown sidecar setting (the injector sets it on app containers, not on the sidecar)", name)
	}
	best, bestDist := "", 4
	for _, ev := range envVars {
		if d := editDistance(name, ev.name); d < bestDist {
			best, bestDist = ev.name, d
		}
	}
	if best != "" {
		return fmt.Errorf("%s: unknown sidecar setting; did you mean %s?", name, best)
	}
	return fmt.Errorf("%s: unknown sidecar setting (see docs/sidecar-api.md for the list)", name)
}

// withDefaults fills in the defaults of the settings a Config built
// without ConfigFromEnv may leave zero.
func (c Config) withDefaults() Config {
	c.ZTSTimeout = tokens.PositiveOr(c.ZTSTimeout, DefaultZTSTimeout)
	c.ShutdownTimeout = tokens.PositiveOr(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.ProxyTimeout = tokens.PositiveOr(c.ProxyTimeout, DefaultProxyTimeout)
	c.ProxyDialTimeout = tokens.PositiveOr(c.ProxyDialTimeout, DefaultProxyDialTimeout)
	c.ReadTimeout = tokens.PositiveOr(c.ReadTimeout, DefaultReadTimeout)
	c.IdleTimeout = tokens.PositiveOr(c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if len(c.ProxyTLSCA) == 0 {
		c.ProxyTLSCA, _ = parseCAList(DefaultProxyTLSCA)
	}
	if c.Clock == nil {
		c.Clock = tokens.RealClock{}
	}
	return c
}

// identityDir is IdentityDir with its default (identity.DefaultIdentityDir).
func (c Config) identityDir() string {
	if c.IdentityDir == "" {
		return identity.DefaultIdentityDir
	}
	return c.IdentityDir
}

// EffectiveIdentityMode is IdentityMode with its default filled in.
func (c Config) EffectiveIdentityMode() IdentityMode {
	switch {
	case c.IdentityMode != "":
		return c.IdentityMode
	case c.Dev:
		return IdentityKeyFile
	}
	return IdentityCopperArgos
}

// Validate checks the settings against each other and the flags: what the
// identity mode requires and forbids, what --dev replaces, and the
// listeners. Every error names the variable or flag.
func (c Config) Validate() error {
	var found problems.List
	add := found.Addf

	if c.Mode != ModeServe && c.Mode != ModeInit {
		add("--mode=%q: want %s or %s", c.Mode, ModeServe, ModeInit)
	}
	mode := c.EffectiveIdentityMode()
	ca := c.CopperArgos
	set := map[string]bool{
		"ATHENZ_ZTS_URL":            c.ZTSURL != "",
		"ATHENZ_ZTS_CA_FILE":        c.ZTSCAFile != "",
		"ATHENZ_IDENTITY_MODE":      c.IdentityMode != "",
		"ATHENZ_KEY_FILE":           c.KeyFile != "",
		"ATHENZ_KEY_VERSION":        c.KeyVersion != "",
		"ATHENZ_CERT_FILE":          c.CertFile != "",
		"ATHENZ_CA_FILE":            c.CAFile != "",
		"ATHENZ_DOMAIN":             c.Domain != "",
		"ATHENZ_SERVICE":            c.Service != "",
		"ATHENZ_PROVIDER":           ca.Provider != "",
		"ATHENZ_DNS_SUFFIX":         ca.DNSSuffix != "",
		"ATHENZ_SA_TOKEN_FILE":      ca.SATokenFile != "",
		"ATHENZ_TRUST_DOMAIN":       ca.TrustDomain != "",
		"ATHENZ_ATTESTATION_FORMAT": ca.AttestationFormat != "",
		"ATHENZ_CERT_RENEWAL":       ca.CertRenewal != "",
		"ATHENZ_CLOUD":              ca.Cloud != "",
		"ATHENZ_KEY_TYPE":           ca.KeyType != "",
		"ATHENZ_ROTATE_KEY":         ca.RotateKey,
		"ATHENZ_NTOKEN":             ca.NToken != nil,
		"ATHENZ_KEY_FILE_CERT":      c.Certificate.KeyFileCert != "",
	}
	// The settings of copper-argos registration; ATHENZ_DNS_SUFFIX also
	// names the certificate of key-file mode.
	registration := []string{"ATHENZ_PROVIDER", "ATHENZ_SA_TOKEN_FILE", "ATHENZ_TRUST_DOMAIN", "ATHENZ_ATTESTATION_FORMAT", "ATHENZ_CERT_RENEWAL",
		"ATHENZ_CLOUD", "ATHENZ_KEY_TYPE", "ATHENZ_ROTATE_KEY", "ATHENZ_NTOKEN"}
	forbid := func(why string, names ...string) {
		for _, n := range names {
			if set[n] {
				add("%s: %s", n, why)
			}
		}
	}
	require := func(why string, names ...string) {
		for _, n := range names {
			if !set[n] {
				add("%s is required %s", n, why)
			}
		}
	}
	if c.Dev {
		if StartDevZTS == nil {
			add("--dev: this sidecar is built without dev mode, which links a fake ZTS; build one with it: make build-sidecar-dev (go build -tags dev ./cmd/sidecar)")
		}
		if c.IdentityMode != "" && c.IdentityMode != IdentityKeyFile {
			add("ATHENZ_IDENTITY_MODE=%s: --dev runs in key-file mode", c.IdentityMode)
		}
		forbid("--dev runs its own fake ZTS with a generated key; unset it", "ATHENZ_ZTS_URL", "ATHENZ_ZTS_CA_FILE",
			"ATHENZ_KEY_FILE", "ATHENZ_KEY_VERSION", "ATHENZ_CERT_FILE", "ATHENZ_CA_FILE", "ATHENZ_DNS_SUFFIX")
		forbid("a copper-argos setting; --dev runs in key-file mode", registration...)
	} else {
		require("(the ZTS base URL, https://host:4443/zts/v1)", "ATHENZ_ZTS_URL")
		switch mode {
		case IdentityFiles:
			require("with ATHENZ_IDENTITY_MODE=files", "ATHENZ_CERT_FILE", "ATHENZ_KEY_FILE")
			forbid("files mode uses the certificate, not a service key; use ATHENZ_IDENTITY_MODE=key-file to sign N-tokens", "ATHENZ_KEY_VERSION")
			forbid("a copper-argos setting, not used with ATHENZ_IDENTITY_MODE=files", append(registration, "ATHENZ_DNS_SUFFIX")...)
			forbid("a key-file setting, not used with ATHENZ_IDENTITY_MODE=files", "ATHENZ_KEY_FILE_CERT")
		case IdentityKeyFile:
			require("with ATHENZ_IDENTITY_MODE=key-file", "ATHENZ_KEY_FILE", "ATHENZ_KEY_VERSION", "ATHENZ_DOMAIN", "ATHENZ_SERVICE")
			forbid("key-file mode authenticates with N-tokens signed by ATHENZ_KEY_FILE; use ATHENZ_IDENTITY_MODE=files for a certificate", "ATHENZ_CERT_FILE", "ATHENZ_CA_FILE")
			forbid("a copper-argos setting, not used with ATHENZ_IDENTITY_MODE=key-file", registration...)
		case IdentityCopperArgos:
			why := "copper-argos mode (the default ATHENZ_IDENTITY_MODE) generates its own key and certificate"
			forbid(why, "ATHENZ_KEY_FILE", "ATHENZ_KEY_VERSION", "ATHENZ_CERT_FILE", "ATHENZ_KEY_FILE_CERT", "ATHENZ_CA_FILE")
		}
	}
	if c.ZTSURL != "" {
		if err := tokens.CheckZTSURL(c.ZTSURL); err != nil {
			add("ATHENZ_ZTS_URL=%q: %v", truncate(c.ZTSURL), err)
		}
	}

	apiAddr := c.Listen
	if c.Listen == ListenOff {
		if c.Socket == "" {
			add("ATHENZ_LISTEN=off needs ATHENZ_SOCKET: the token API must listen somewhere")
		}
		apiAddr = "" // checked above; nothing to bind
	}
	healthAddr := c.HealthListen
	if c.HealthListen == ListenOff {
		if c.Socket == "" {
			add("ATHENZ_HEALTH_LISTEN=off needs ATHENZ_SOCKET: /healthz and /readyz must be served somewhere")
		}
		healthAddr = ""
	}
	listeners := []struct{ name, addr string }{
		{"ATHENZ_LISTEN", apiAddr},
		{"ATHENZ_PROXY_NTOKEN_LISTEN", c.ProxyNTokenListen},
		{"ATHENZ_PROXY_ROLETOKEN_LISTEN", c.ProxyRoleTokenListen},
		{"ATHENZ_HEALTH_LISTEN", healthAddr},
	}
	var valid []int
	for i, l := range listeners {
		if l.addr == "" {
			if (i == 0 && c.Listen != ListenOff) || (i == 3 && c.HealthListen != ListenOff) {
				add("%s must not be empty", l.name)
			}
			continue
		}
		host, _, err := splitListen(l.addr)
		if err != nil {
			add("%s=%q: %v", l.name, truncate(l.addr), err)
			continue
		}
		valid = append(valid, i)
		if i < 3 && !c.ListenAllowRemote && !isLoopbackHost(host) {
			add("%s=%q: the token API and proxies hand out credentials and listen on loopback only (127.0.0.1, ::1, localhost); set ATHENZ_LISTEN_ALLOW_REMOTE=true to allow %q",
				l.name, l.addr, l.addr)
		}
	}
	for a := 0; a < len(valid); a++ {
		for b := a + 1; b < len(valid); b++ {
			la, lb := listeners[valid[a]], listeners[valid[b]]
			if listenConflict(la.addr, lb.addr) {
				add("%s=%q and %s=%q: the same address", la.name, la.addr, lb.name, lb.addr)
			}
		}
	}
	if c.ZTSTimeout <= 0 {
		add("ATHENZ_ZTS_TIMEOUT must be more than 0")
	}
	return found.Err()
}

// splitListen checks a listen address "host:port" (host may be empty).
func splitListen(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", errors.New("want host:port, e.g. 127.0.0.1:8081")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return host, port, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenConflict reports whether two listen addresses cannot both be bound:
// the same non-zero port on the same host, or on a wildcard host.
func listenConflict(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

// parseSeconds accepts a Go duration ("1m30s") or a number of seconds.
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 10s, or a number of seconds")
	}
	return d, nil
}

func truncate(s string) string {
	const limit = 128
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

// editDistance is the Levenshtein distance, for "did you mean" hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
