package sidecar

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestConfigFromEnvDefaults(t *testing.T) {
	cfg, err := ConfigFromEnv([]string{
		"HOME=/root", "ATHENZ_DOMAIN=", // empty counts as unset
		"POD_NAME=web-1", "POD_NAMESPACE=shop", "POD_UID=u-1", "POD_IP=10.0.0.7", "SERVICE_ACCOUNT=web",
	})
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	want := Config{
		Mode: ModeServe, ZTSTimeout: DefaultZTSTimeout, Listen: "127.0.0.1:8081", HealthListen: ":8082",
		LogLevel: "info", ShutdownTimeout: DefaultShutdownTimeout,
		ProxyTimeout: DefaultProxyTimeout, ProxyDialTimeout: DefaultProxyDialTimeout, ReadTimeout: DefaultReadTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxConnections: DefaultMaxConnections,
		Pod: PodInfo{Name: "web-1", Namespace: "shop", UID: "u-1", IP: "10.0.0.7", ServiceAccount: "web"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ConfigFromEnv defaults =\n%+v\nwant\n%+v", cfg, want)
	}
	if m := cfg.EffectiveIdentityMode(); m != IdentityCopperArgos {
		t.Errorf("default identity mode %q, want copper-argos", m)
	}
	cfg.Dev = true
	if m := cfg.EffectiveIdentityMode(); m != IdentityKeyFile {
		t.Errorf("dev identity mode %q, want key-file", m)
	}
}

func TestConfigFromEnvValues(t *testing.T) {
	cfg, err := ConfigFromEnv([]string{
		"ATHENZ_ZTS_URL=https://zts.example.com:4443/zts/v1",
		"ATHENZ_ZTS_CA_FILE=/etc/athenz/ca.pem",
		"ATHENZ_ZTS_TIMEOUT=3",
		"ATHENZ_IDENTITY_MODE=key-file",
		"ATHENZ_DOMAIN=shop.prod",
		"ATHENZ_SERVICE=web",
		"ATHENZ_KEY_FILE=/keys/web.pem",
		"ATHENZ_KEY_VERSION=v1",
		"ATHENZ_IDENTITY_DIR=/var/run/athenz",
		"ATHENZ_LISTEN=127.0.0.1:9000",
		"ATHENZ_LISTEN_ALLOW_REMOTE=false",
		"ATHENZ_HEALTH_LISTEN=:9001",
		"ATHENZ_SOCKET=/var/run/athenz/sidecar.sock",
		"ATHENZ_PREFETCH=prov:role.reader, other:domain",
		"ATHENZ_PREFETCH_ROLE_TOKENS=prov:role.writer",
		"ATHENZ_PROXY_ALLOWED_HOSTS=API.example.com, *.svc.cluster.local:8080",
		"ATHENZ_PROXY_NTOKEN_LISTEN=127.0.0.1:9002",
		"ATHENZ_PROXY_ROLETOKEN_LISTEN=[::1]:9003",
		"ATHENZ_LOG_LEVEL=DEBUG",
		"ATHENZ_KEY_FILE_CERT=off",
		"ATHENZ_PROXY_TIMEOUT=1m",
		"ATHENZ_PROXY_DIAL_TIMEOUT=2",
		"ATHENZ_READ_TIMEOUT=3s",
		"ATHENZ_IDLE_TIMEOUT=90",
		"ATHENZ_SHUTDOWN_TIMEOUT=20s",
		"ATHENZ_MAX_CONNECTIONS=64",
		"ATHENZ_ZTS_URL=https://second.example.com/zts/v1", // the first one wins, as os.Getenv
	})
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	want := Config{
		Mode: ModeServe, ZTSURL: "https://zts.example.com:4443/zts/v1", ZTSCAFile: "/etc/athenz/ca.pem",
		ZTSTimeout: 3 * time.Second, IdentityMode: IdentityKeyFile, Domain: "shop.prod", Service: "web",
		KeyFile: "/keys/web.pem", KeyVersion: "v1", IdentityDir: "/var/run/athenz",
		Listen: "127.0.0.1:9000", HealthListen: ":9001", Socket: "/var/run/athenz/sidecar.sock",
		Prefetch:           []tokens.Target{{Domain: "prov", Role: "reader"}, {Domain: "other"}},
		PrefetchRoleTokens: []tokens.Target{{Domain: "prov", Role: "writer"}},
		ProxyAllowedHosts:  []string{"api.example.com", "*.svc.cluster.local:8080"},
		ProxyNTokenListen:  "127.0.0.1:9002", ProxyRoleTokenListen: "[::1]:9003",
		LogLevel: "debug", ShutdownTimeout: 20 * time.Second,
		Certificate:  CertificateConfig{KeyFileCert: "off"},
		ProxyTimeout: time.Minute, ProxyDialTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second,
		IdleTimeout: 90 * time.Second, MaxConnections: 64,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ConfigFromEnv =\n%+v\nwant\n%+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestConfigErrors: every setting that does not parse, every unknown
// variable and every contradiction stops the sidecar with a message naming
// the variable (or flag).
func TestConfigErrors(t *testing.T) {
	keyFile := []string{
		"ATHENZ_ZTS_URL=https://zts.example.com/zts/v1", "ATHENZ_IDENTITY_MODE=key-file",
		"ATHENZ_KEY_FILE=/k.pem", "ATHENZ_KEY_VERSION=0", "ATHENZ_DOMAIN=d", "ATHENZ_SERVICE=s",
	}
	files := []string{
		"ATHENZ_ZTS_URL=https://zts.example.com/zts/v1", "ATHENZ_IDENTITY_MODE=files",
		"ATHENZ_CERT_FILE=/c.pem", "ATHENZ_KEY_FILE=/k.pem",
	}
	with := func(base []string, extra ...string) []string { return overrideEnv(base, extra) }

	tests := []struct {
		name    string
		env     []string
		dev     bool
		mode    string
		wantErr []string // substrings; nil: no error
	}{
		// Valid settings.
		{name: "key-file", env: keyFile},
		{name: "files", env: files},
		{name: "files with domain and service", env: with(files, "ATHENZ_DOMAIN=d", "ATHENZ_SERVICE=s")},
		{name: "copper-argos (checked at start)", env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1", "ATHENZ_PROVIDER=sys.k8s", "ATHENZ_ATTESTATION_FORMAT=token", "ATHENZ_CERT_RENEWAL=reregister"}},
		{name: "dev", dev: true},
		{name: "dev with domain", dev: true, env: []string{"ATHENZ_DOMAIN=x", "ATHENZ_IDENTITY_MODE=key-file"}},
		{name: "remote allowed", env: with(keyFile, "ATHENZ_LISTEN=0.0.0.0:8081", "ATHENZ_LISTEN_ALLOW_REMOTE=true")},
		{name: "localhost", env: with(keyFile, "ATHENZ_LISTEN=localhost:8081")},
		{name: "ipv6 loopback", env: with(keyFile, "ATHENZ_LISTEN=[::1]:8081")},
		{name: "init mode", env: keyFile, mode: ModeInit},
		{name: "port 0 twice", env: with(keyFile, "ATHENZ_LISTEN=127.0.0.1:0", "ATHENZ_PROXY_NTOKEN_LISTEN=127.0.0.1:0")},

		// Unknown variables.
		{name: "unknown", env: with(keyFile, "ATHENZ_FOO=1"), wantErr: []string{"ATHENZ_FOO: unknown sidecar setting"}},
		{name: "typo", env: with(keyFile, "ATHENZ_ZTS_ULR=x"), wantErr: []string{"ATHENZ_ZTS_ULR: unknown sidecar setting; did you mean ATHENZ_ZTS_URL?"}},
		{name: "app container variable", env: with(keyFile, "ATHENZ_SIDECAR_URL=http://127.0.0.1:8081"), wantErr: []string{"ATHENZ_SIDECAR_URL", "app containers"}},
		{name: "unknown even when empty", env: with(keyFile, "ATHENZ_NOPE="), wantErr: []string{"ATHENZ_NOPE: unknown"}},

		// Values that do not parse.
		{name: "timeout not a duration", env: with(keyFile, "ATHENZ_ZTS_TIMEOUT=soon"), wantErr: []string{`ATHENZ_ZTS_TIMEOUT="soon"`}},
		{name: "timeout zero", env: with(keyFile, "ATHENZ_ZTS_TIMEOUT=0s"), wantErr: []string{"ATHENZ_ZTS_TIMEOUT", "more than 0"}},
		{name: "timeout too long", env: with(keyFile, "ATHENZ_ZTS_TIMEOUT=10m"), wantErr: []string{"ATHENZ_ZTS_TIMEOUT", "at most 5m"}},
		{name: "identity mode", env: with(keyFile, "ATHENZ_IDENTITY_MODE=spiffe"), wantErr: []string{`ATHENZ_IDENTITY_MODE="spiffe": want copper-argos, key-file or files`}},
		{name: "domain", env: with(keyFile, "ATHENZ_DOMAIN=a b"), wantErr: []string{`ATHENZ_DOMAIN="a b"`}},
		{name: "service", env: with(keyFile, "ATHENZ_SERVICE=a.b"), wantErr: []string{`ATHENZ_SERVICE="a.b"`}},
		{name: "key version", env: with(keyFile, "ATHENZ_KEY_VERSION=a;b"), wantErr: []string{"ATHENZ_KEY_VERSION", "';'"}},
		{name: "provider", env: []string{"ATHENZ_PROVIDER=sys k8s"}, wantErr: []string{"ATHENZ_PROVIDER"}},
		{name: "attestation format", env: []string{"ATHENZ_ATTESTATION_FORMAT=jwt"}, wantErr: []string{"ATHENZ_ATTESTATION_FORMAT", "token or id-token-json"}},
		{name: "cert renewal", env: []string{"ATHENZ_CERT_RENEWAL=never"}, wantErr: []string{"ATHENZ_CERT_RENEWAL", "refresh or reregister"}},
		{name: "allow remote", env: with(keyFile, "ATHENZ_LISTEN_ALLOW_REMOTE=maybe"), wantErr: []string{"ATHENZ_LISTEN_ALLOW_REMOTE", "true or false"}},
		{name: "socket relative", env: with(keyFile, "ATHENZ_SOCKET=sidecar.sock"), wantErr: []string{"ATHENZ_SOCKET", "absolute path"}},
		{name: "listen off without socket", env: with(keyFile, "ATHENZ_LISTEN=off"), wantErr: []string{"ATHENZ_LISTEN=off needs ATHENZ_SOCKET"}},
		{name: "health off without socket", env: with(keyFile, "ATHENZ_HEALTH_LISTEN=off"), wantErr: []string{"ATHENZ_HEALTH_LISTEN=off needs ATHENZ_SOCKET"}},
		{name: "health off with socket", env: with(keyFile, "ATHENZ_HEALTH_LISTEN=off", "ATHENZ_LISTEN=off", "ATHENZ_SOCKET=/var/run/athenz/sidecar.sock")},
		{name: "prefetch", env: with(keyFile, "ATHENZ_PREFETCH=prov"), wantErr: []string{"ATHENZ_PREFETCH", "<domain>:role.<role>"}},
		{name: "prefetch role", env: with(keyFile, "ATHENZ_PREFETCH=prov:role.a"+",", "ATHENZ_PREFETCH_ROLE_TOKENS=prov:group.x"), wantErr: []string{"ATHENZ_PREFETCH=", "ATHENZ_PREFETCH_ROLE_TOKENS="}},
		{name: "allowed hosts URL", env: with(keyFile, "ATHENZ_PROXY_ALLOWED_HOSTS=http://api.example.com/"), wantErr: []string{"ATHENZ_PROXY_ALLOWED_HOSTS", "not a URL"}},
		{name: "allowed hosts empty entry", env: with(keyFile, "ATHENZ_PROXY_ALLOWED_HOSTS=a,,b"), wantErr: []string{"ATHENZ_PROXY_ALLOWED_HOSTS", "empty entry"}},
		{name: "allowed hosts port", env: with(keyFile, "ATHENZ_PROXY_ALLOWED_HOSTS=a:99999"), wantErr: []string{"ATHENZ_PROXY_ALLOWED_HOSTS", "port"}},
		{name: "allowed hosts bare wildcard", env: with(keyFile, "ATHENZ_PROXY_ALLOWED_HOSTS=*."), wantErr: []string{"ATHENZ_PROXY_ALLOWED_HOSTS", "wildcard"}},
		{name: "TLS hosts URL", env: with(keyFile, "ATHENZ_PROXY_TLS_HOSTS=https://api.example.com/"), wantErr: []string{"ATHENZ_PROXY_TLS_HOSTS", "not a URL"}},
		{name: "TLS hosts every host", env: with(keyFile, "ATHENZ_PROXY_TLS_HOSTS=*,*:8443")},
		{name: "TLS CA unknown", env: with(keyFile, "ATHENZ_PROXY_TLS_CA=system,sytem"), wantErr: []string{"ATHENZ_PROXY_TLS_CA", `entry "sytem": want system, zts, identity or the absolute path`}},
		{name: "TLS CA relative path", env: with(keyFile, "ATHENZ_PROXY_TLS_CA=ca.pem"), wantErr: []string{"ATHENZ_PROXY_TLS_CA", "absolute path"}},
		{name: "TLS CA empty entry", env: with(keyFile, "ATHENZ_PROXY_TLS_CA=zts,"), wantErr: []string{"ATHENZ_PROXY_TLS_CA", "empty entry"}},
		{name: "allowed hosts star", env: with(keyFile, "ATHENZ_PROXY_ALLOWED_HOSTS=a*b"), wantErr: []string{"ATHENZ_PROXY_ALLOWED_HOSTS"}},
		{name: "log level", env: with(keyFile, "ATHENZ_LOG_LEVEL=trace"), wantErr: []string{"ATHENZ_LOG_LEVEL", "debug, info, warn or error"}},
		{name: "key-file certificate policy", env: with(keyFile, "ATHENZ_KEY_FILE_CERT=maybe"), wantErr: []string{"ATHENZ_KEY_FILE_CERT", "optional, required or off"}},
		{name: "key-file certificate policy in files mode", env: with(files, "ATHENZ_KEY_FILE_CERT=off"), wantErr: []string{"ATHENZ_KEY_FILE_CERT: a key-file setting"}},
		{name: "key-file certificate policy in copper-argos mode", env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1", "ATHENZ_KEY_FILE_CERT=off"}, wantErr: []string{"ATHENZ_KEY_FILE_CERT: copper-argos mode"}},
		{name: "proxy timeout zero", env: with(keyFile, "ATHENZ_PROXY_TIMEOUT=0"), wantErr: []string{"ATHENZ_PROXY_TIMEOUT", "more than 0"}},
		{name: "read timeout not a duration", env: with(keyFile, "ATHENZ_READ_TIMEOUT=fast"), wantErr: []string{`ATHENZ_READ_TIMEOUT="fast"`}},
		{name: "idle timeout too long", env: with(keyFile, "ATHENZ_IDLE_TIMEOUT=2h"), wantErr: []string{"ATHENZ_IDLE_TIMEOUT", "at most 1h"}},
		{name: "max connections zero", env: with(keyFile, "ATHENZ_MAX_CONNECTIONS=0"), wantErr: []string{"ATHENZ_MAX_CONNECTIONS", "whole number"}},
		{name: "several at once", env: with(keyFile, "ATHENZ_LOG_LEVEL=trace", "ATHENZ_FOO=1"), wantErr: []string{"ATHENZ_LOG_LEVEL", "ATHENZ_FOO"}},

		// Contradictions and missing settings.
		{name: "no ZTS URL", env: with(keyFile, "ATHENZ_ZTS_URL="), wantErr: []string{"ATHENZ_ZTS_URL is required"}},
		{name: "ZTS URL http", env: with(keyFile, "ATHENZ_ZTS_URL=http://zts/zts/v1"), wantErr: []string{"ATHENZ_ZTS_URL", "want https://"}},
		{name: "ZTS URL with query", env: with(keyFile, "ATHENZ_ZTS_URL=https://zts/zts/v1?x=1"), wantErr: []string{"ATHENZ_ZTS_URL"}},
		{name: "files without cert", env: with(files, "ATHENZ_CERT_FILE="), wantErr: []string{"ATHENZ_CERT_FILE is required with ATHENZ_IDENTITY_MODE=files"}},
		{name: "files without key", env: with(files, "ATHENZ_KEY_FILE="), wantErr: []string{"ATHENZ_KEY_FILE is required with ATHENZ_IDENTITY_MODE=files"}},
		{name: "files with CA", env: with(files, "ATHENZ_CA_FILE=/etc/athenz/cert/ca.crt")},
		{name: "key-file with CA file", env: with(keyFile, "ATHENZ_CA_FILE=/ca.pem"), wantErr: []string{"ATHENZ_CA_FILE: key-file mode"}},
		{name: "copper-argos with CA file", env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1", "ATHENZ_CA_FILE=/ca.pem"}, wantErr: []string{"ATHENZ_CA_FILE: copper-argos mode"}},
		{name: "files with key version", env: with(files, "ATHENZ_KEY_VERSION=0"), wantErr: []string{"ATHENZ_KEY_VERSION: files mode"}},
		{name: "files with copper-argos settings", env: with(files, "ATHENZ_DNS_SUFFIX=athenz.cloud"), wantErr: []string{"ATHENZ_DNS_SUFFIX: a copper-argos setting, not used with ATHENZ_IDENTITY_MODE=files"}},
		{name: "key-file without version", env: with(keyFile, "ATHENZ_KEY_VERSION="), wantErr: []string{"ATHENZ_KEY_VERSION is required with ATHENZ_IDENTITY_MODE=key-file"}},
		{name: "key-file without domain and service", env: with(keyFile, "ATHENZ_DOMAIN=", "ATHENZ_SERVICE="), wantErr: []string{"ATHENZ_DOMAIN is required", "ATHENZ_SERVICE is required"}},
		{name: "key-file without key", env: with(keyFile, "ATHENZ_KEY_FILE="), wantErr: []string{"ATHENZ_KEY_FILE is required"}},
		{name: "key-file with cert", env: with(keyFile, "ATHENZ_CERT_FILE=/c.pem"), wantErr: []string{"ATHENZ_CERT_FILE: key-file mode"}},
		{name: "key-file with copper-argos settings", env: with(keyFile, "ATHENZ_SA_TOKEN_FILE=/t", "ATHENZ_PROVIDER=sys.k8s"), wantErr: []string{"ATHENZ_SA_TOKEN_FILE: a copper-argos setting, not used with ATHENZ_IDENTITY_MODE=key-file", "ATHENZ_PROVIDER: a copper-argos setting"}},
		{name: "key-file with DNS suffix", env: with(keyFile, "ATHENZ_DNS_SUFFIX=athenz.cloud")},
		{name: "copper-argos default with key file", env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1", "ATHENZ_KEY_FILE=/k.pem"}, wantErr: []string{"ATHENZ_KEY_FILE: copper-argos mode (the default ATHENZ_IDENTITY_MODE)"}},
		{name: "copper-argos with cert", env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1", "ATHENZ_IDENTITY_MODE=copper-argos", "ATHENZ_CERT_FILE=/c.pem"}, wantErr: []string{"ATHENZ_CERT_FILE: copper-argos mode"}},
		{name: "dev with ZTS URL", dev: true, env: []string{"ATHENZ_ZTS_URL=https://zts/zts/v1"}, wantErr: []string{"ATHENZ_ZTS_URL: --dev runs its own fake ZTS"}},
		{name: "dev with key file", dev: true, env: []string{"ATHENZ_KEY_FILE=/k.pem", "ATHENZ_KEY_VERSION=1"}, wantErr: []string{"ATHENZ_KEY_FILE: --dev", "ATHENZ_KEY_VERSION: --dev"}},
		{name: "dev with files mode", dev: true, env: []string{"ATHENZ_IDENTITY_MODE=files"}, wantErr: []string{"ATHENZ_IDENTITY_MODE=files: --dev runs in key-file mode"}},
		{name: "dev with copper-argos settings", dev: true, env: []string{"ATHENZ_PROVIDER=sys.k8s"}, wantErr: []string{"ATHENZ_PROVIDER: a copper-argos setting; --dev"}},
		{name: "bad --mode", env: keyFile, mode: "once", wantErr: []string{`--mode="once": want serve or init`}},
		{name: "listen not loopback", env: with(keyFile, "ATHENZ_LISTEN=0.0.0.0:8081"), wantErr: []string{`ATHENZ_LISTEN="0.0.0.0:8081"`, "set ATHENZ_LISTEN_ALLOW_REMOTE=true"}},
		{name: "listen all interfaces", env: with(keyFile, "ATHENZ_LISTEN=:8081"), wantErr: []string{`ATHENZ_LISTEN=":8081"`, "loopback only"}},
		{name: "listen pod IP", env: with(keyFile, "ATHENZ_LISTEN=10.0.0.7:8081"), wantErr: []string{"ATHENZ_LISTEN_ALLOW_REMOTE"}},
		{name: "listen a name", env: with(keyFile, "ATHENZ_LISTEN=myhost:8081"), wantErr: []string{"ATHENZ_LISTEN_ALLOW_REMOTE"}},
		{name: "listen no port", env: with(keyFile, "ATHENZ_LISTEN=8081"), wantErr: []string{`ATHENZ_LISTEN="8081": want host:port`}},
		{name: "listen bad port", env: with(keyFile, "ATHENZ_LISTEN=127.0.0.1:http"), wantErr: []string{"ATHENZ_LISTEN", "port \"http\""}},
		{name: "health no port", env: with(keyFile, "ATHENZ_HEALTH_LISTEN=localhost"), wantErr: []string{"ATHENZ_HEALTH_LISTEN"}},
		{name: "proxy listen not loopback", env: with(keyFile, "ATHENZ_PROXY_NTOKEN_LISTEN=0.0.0.0:9000"), wantErr: []string{"ATHENZ_PROXY_NTOKEN_LISTEN", "ATHENZ_LISTEN_ALLOW_REMOTE=true"}},
		{name: "role proxy listen not loopback", env: with(keyFile, "ATHENZ_PROXY_ROLETOKEN_LISTEN=:9000"), wantErr: []string{"ATHENZ_PROXY_ROLETOKEN_LISTEN"}},
		{name: "proxy on the API address", env: with(keyFile, "ATHENZ_PROXY_ROLETOKEN_LISTEN=127.0.0.1:8081"), wantErr: []string{`ATHENZ_LISTEN="127.0.0.1:8081" and ATHENZ_PROXY_ROLETOKEN_LISTEN="127.0.0.1:8081": the same address`}},
		{name: "health on the API port", env: with(keyFile, "ATHENZ_HEALTH_LISTEN=:8081"), wantErr: []string{"ATHENZ_LISTEN", "ATHENZ_HEALTH_LISTEN", "the same address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(tt.env)
			if err == nil {
				cfg.Dev = tt.dev
				if tt.mode != "" {
					cfg.Mode = tt.mode
				}
				err = cfg.Validate()
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("config %q: %v, want no error", tt.env, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("config %q (dev %v): no error, want one containing %q", tt.env, tt.dev, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("config %q: error %q, want it to contain %q", tt.env, err, want)
				}
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"abc", "abd", 1}, {"ATHENZ_ZTS_ULR", "ATHENZ_ZTS_URL", 2}, {"a", "", 1}, {"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
