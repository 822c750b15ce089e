package webhook

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// Names and paths of what the injector adds to a Pod.
const (
	// SidecarName is the sidecar container (a native sidecar by default).
	SidecarName = "athenz-sidecar"
	// InitName is the init container that fetches the identity before the
	// app starts when the sidecar is not native.
	InitName = "athenz-sidecar-init"

	VolumeIdentity   = "athenz-identity"    // emptyDir (memory): certificate, key, CA, socket
	VolumeSAToken    = "athenz-sa-token"    // projected service account token (copper-argos)
	VolumeZTSCA      = "athenz-zts-ca"      // the CA bundle that ZTS's certificate chains to
	VolumeServiceKey = "athenz-service-key" // the service key (key-file)
	VolumeCert       = "athenz-cert"        // certificate and key issued by others (files)

	// IdentityDir is where the identity volume is mounted in every
	// container of the Pod.
	IdentityDir = "/var/run/athenz"

	saTokenDir    = "/var/run/secrets/athenz.io/serviceaccount"
	saTokenFile   = "token"
	ztsCADir      = "/etc/athenz/zts-ca"
	ztsCAFile     = "ca.pem"
	serviceKeyDir = "/etc/athenz/service-key"
	serviceKey    = "key.pem"
	certDir       = "/etc/athenz/cert"
	certFile      = "cert.pem"
	certKeyFile   = "key.pem"
	certCAFile    = "ca.pem"

	socketPath = IdentityDir + "/sidecar.sock"

	// saTokenSeconds is the lifetime of the projected token; kubelet
	// rotates it at 80%.
	saTokenSeconds = 3600
	// sidecarUID runs the sidecar as a non-root user even when the image
	// names its user by name.
	sidecarUID = 65532
)

// Files in the identity directory, written by the sidecar.
const (
	identityCert = IdentityDir + "/service.cert.pem"
	identityKey  = IdentityDir + "/service.key.pem"
	identityCA   = IdentityDir + "/ca.cert.pem"
)

// Environment variables of app containers.
const (
	EnvSidecarURL = "ATHENZ_SIDECAR_URL"
	EnvCertFile   = "ATHENZ_CERT_FILE"
	EnvKeyFile    = "ATHENZ_KEY_FILE"
	EnvCAFile     = "ATHENZ_CA_FILE"
)

// identityKeyModeNoFSGroup is the key file's mode in a Pod without an
// fsGroup; with one, the sidecar's default (0640, the fsGroup may read).
const identityKeyModeNoFSGroup = "0644"

// sidecarBinary is the sidecar image's entrypoint (Dockerfile.sidecar),
// which the startup probe runs.
const sidecarBinary = "/sidecar"

// listenOff is ATHENZ_LISTEN for hostNetwork Pods: no TCP listener for the
// token API, which would be on the node's loopback.
const listenOff = "off"

func (p *plan) sidecarURL() string {
	if p.socket {
		return "unix://" + socketPath
	}
	return "http://127.0.0.1:" + strconv.Itoa(int(p.apiPort))
}

// appEnv is what every targeted container gets, unless it sets the
// variable. Each names something that exists: without a sidecar that keeps
// running (initOnly) there is no token API to name, and in files mode the
// CA file is written only when the profile names the Secret's CA key.
func (p *plan) appEnv() []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, 4)
	if !p.initOnly {
		env = append(env, corev1.EnvVar{Name: EnvSidecarURL, Value: p.sidecarURL()})
	}
	env = append(env,
		corev1.EnvVar{Name: EnvCertFile, Value: identityCert},
		corev1.EnvVar{Name: EnvKeyFile, Value: identityKey})
	if p.mode != v1alpha1.IdentityFiles || p.files.CAKey != "" {
		env = append(env, corev1.EnvVar{Name: EnvCAFile, Value: identityCA})
	}
	return env
}

func appMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: VolumeIdentity, MountPath: IdentityDir, ReadOnly: true}
}

// volumes are the Pod volumes the plan adds, in a fixed order.
func (p *plan) volumes() []corev1.Volume {
	vols := []corev1.Volume{{
		Name: VolumeIdentity,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory,
		}},
	}}
	if p.mode == v1alpha1.IdentityCopperArgos {
		vols = append(vols, corev1.Volume{
			Name: VolumeSAToken,
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience:          p.audience,
					ExpirationSeconds: ptr.To[int64](saTokenSeconds),
					Path:              saTokenFile,
				}}},
			}},
		})
	}
	if p.ca != nil {
		items := func(key string) []corev1.KeyToPath { return []corev1.KeyToPath{{Key: key, Path: ztsCAFile}} }
		v := corev1.Volume{Name: VolumeZTSCA}
		if p.caCopy {
			// A cluster-wide profile: the injector's copy in the Pod's
			// namespace (ZTSCAReconciler).
			v.ConfigMap = &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: p.caCopyName},
				Items:                items(ZTSCACopyKey),
			}
		} else if cm := p.ca.ConfigMap; cm != nil {
			v.ConfigMap = &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name},
				Items:                items(cm.Key),
			}
		} else {
			v.Secret = &corev1.SecretVolumeSource{SecretName: p.ca.Secret.Name, Items: items(p.ca.Secret.Key)}
		}
		vols = append(vols, v)
	}
	switch p.mode {
	case v1alpha1.IdentityKeyFile:
		vols = append(vols, corev1.Volume{
			Name: VolumeServiceKey,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: p.keyFile.Secret.Name,
				Items:      []corev1.KeyToPath{{Key: p.keyFile.Secret.Key, Path: serviceKey}},
			}},
		})
	case v1alpha1.IdentityFiles:
		vols = append(vols, corev1.Volume{
			Name: VolumeCert,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: p.files.SecretName,
				Items:      p.filesItems(),
			}},
		})
	}
	return vols
}

// filesItems are the keys of the files mode Secret the sidecar reads.
func (p *plan) filesItems() []corev1.KeyToPath {
	items := []corev1.KeyToPath{
		{Key: p.files.CertKey, Path: certFile},
		{Key: p.files.KeyKey, Path: certKeyFile},
	}
	if p.files.CAKey != "" {
		items = append(items, corev1.KeyToPath{Key: p.files.CAKey, Path: certCAFile})
	}
	return items
}

// sidecarMounts are the sidecar's volume mounts: the identity volume
// writable, the rest read-only.
func (p *plan) sidecarMounts() []corev1.VolumeMount {
	m := []corev1.VolumeMount{{Name: VolumeIdentity, MountPath: IdentityDir}}
	if p.mode == v1alpha1.IdentityCopperArgos {
		m = append(m, corev1.VolumeMount{Name: VolumeSAToken, MountPath: saTokenDir, ReadOnly: true})
	}
	if p.ca != nil {
		m = append(m, corev1.VolumeMount{Name: VolumeZTSCA, MountPath: ztsCADir, ReadOnly: true})
	}
	switch p.mode {
	case v1alpha1.IdentityKeyFile:
		m = append(m, corev1.VolumeMount{Name: VolumeServiceKey, MountPath: serviceKeyDir, ReadOnly: true})
	case v1alpha1.IdentityFiles:
		m = append(m, corev1.VolumeMount{Name: VolumeCert, MountPath: certDir, ReadOnly: true})
	}
	return m
}

// sidecarEnv is the sidecar's configuration (DESIGN.md, "Sidecar
// configuration").
func (p *plan) sidecarEnv() []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, 26)
	add := func(name, value string) { env = append(env, corev1.EnvVar{Name: name, Value: value}) }
	add("ATHENZ_ZTS_URL", p.ztsURL)
	if p.ca != nil {
		add("ATHENZ_ZTS_CA_FILE", ztsCADir+"/"+ztsCAFile)
	}
	add("ATHENZ_IDENTITY_MODE", string(p.mode))
	add("ATHENZ_DOMAIN", p.domain)
	add("ATHENZ_SERVICE", p.service)
	switch p.mode {
	case v1alpha1.IdentityCopperArgos:
		add("ATHENZ_PROVIDER", p.provider)
		add("ATHENZ_DNS_SUFFIX", p.dnsSuffix)
		add("ATHENZ_SA_TOKEN_FILE", saTokenDir+"/"+saTokenFile)
		if p.trustDomain != "" {
			add("ATHENZ_TRUST_DOMAIN", p.trustDomain)
		}
		add("ATHENZ_ATTESTATION_FORMAT", string(p.attestation))
		add("ATHENZ_CERT_RENEWAL", string(p.renewal))
	case v1alpha1.IdentityKeyFile:
		add("ATHENZ_KEY_FILE", serviceKeyDir+"/"+serviceKey)
		add("ATHENZ_KEY_VERSION", p.keyFile.Version)
	case v1alpha1.IdentityFiles:
		add("ATHENZ_CERT_FILE", certDir+"/"+certFile)
		add("ATHENZ_KEY_FILE", certDir+"/"+certKeyFile)
		if p.files.CAKey != "" {
			add("ATHENZ_CA_FILE", certDir+"/"+certCAFile)
		}
	}
	add("ATHENZ_IDENTITY_DIR", IdentityDir)
	if !p.fsGroup {
		// Without an fsGroup the app containers share no group with the
		// sidecar, and may run as any user: the key must be readable by
		// all. The identity volume is the Pod's own emptyDir, which no
		// other Pod sees (docs/design/2026-12-02-identity-file-modes.md).
		add("ATHENZ_IDENTITY_KEY_MODE", identityKeyModeNoFSGroup)
	}
	if p.socket {
		add("ATHENZ_LISTEN", listenOff)
	} else {
		add("ATHENZ_LISTEN", "127.0.0.1:"+strconv.Itoa(int(p.apiPort)))
	}
	if p.healthTCP {
		add("ATHENZ_HEALTH_LISTEN", ":"+strconv.Itoa(int(p.healthPort)))
	} else {
		add("ATHENZ_HEALTH_LISTEN", listenOff)
	}
	if p.socket {
		add("ATHENZ_SOCKET", socketPath)
	}
	if p.prefetch != "" {
		add("ATHENZ_PREFETCH", p.prefetch)
	}
	if p.tokenFiles != "" {
		add("ATHENZ_TOKEN_FILES", p.tokenFiles)
	}
	if p.proxyHosts != "" {
		add("ATHENZ_PROXY_ALLOWED_HOSTS", p.proxyHosts)
	}
	if p.tlsHosts != "" {
		add("ATHENZ_PROXY_TLS_HOSTS", p.tlsHosts)
	}
	field := func(name, path string) {
		env = append(env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: path},
		}})
	}
	field("POD_NAME", "metadata.name")
	field("POD_NAMESPACE", "metadata.namespace")
	field("POD_UID", "metadata.uid")
	field("POD_IP", "status.podIP")
	field("SERVICE_ACCOUNT", "spec.serviceAccountName")
	return env
}

// sidecar is the sidecar container. With init set it is the one-shot init
// container of nativeSidecar: Never, which fetches the identity and exits.
func (p *plan) sidecar(init bool) corev1.Container {
	c := corev1.Container{
		Name:            SidecarName,
		Image:           p.image,
		ImagePullPolicy: p.pullPolicy,
		Env:             p.sidecarEnv(),
		Resources:       p.resources,
		VolumeMounts:    p.sidecarMounts(),
		// A sidecar that cannot get the identity exits (--mode=init) or
		// logs why: kubectl describe shows the last lines.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(p.runAsUser),
			RunAsGroup:               ptr.To(p.runAsGroup),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if init {
		c.Name = InitName
		c.Args = []string{"--mode=init"}
		return c
	}
	// The startup probe runs the sidecar's own probe command in the
	// container: it asks /readyz on loopback, where the sidecar says why it
	// is not ready, and prints that, so the kubelet's "Startup probe failed"
	// Event tells the user the reason (an HTTP probe's Event has only the
	// status code, and /readyz tells other addresses no more).
	c.StartupProbe = &corev1.Probe{
		ProbeHandler:     execProbe("readyz"),
		PeriodSeconds:    1,
		TimeoutSeconds:   2,
		FailureThreshold: 300,
	}
	// Readiness: every credential the Pod was configured for is valid
	// now. A Pod whose identity expired leaves its Services' endpoints.
	// Without a health port (hostNetwork) the probes run the probe
	// command, which asks the socket.
	ready, alive := execProbe("readyz"), execProbe("healthz")
	if p.healthTCP {
		c.Ports = []corev1.ContainerPort{{Name: "athenz-health", ContainerPort: p.healthPort, Protocol: corev1.ProtocolTCP}}
		health := intstr.FromInt32(p.healthPort)
		ready = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: health}}
		alive = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: health}}
	}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: ready, PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 2}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: alive, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
	switch {
	case p.native:
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	case p.shutdownDelay > 0:
		// A regular container gets SIGTERM with the app: the sleep keeps
		// the sidecar serving while the app shuts down (a native sidecar
		// stops after the app by itself).
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: int64(p.shutdownDelay)},
		}}
	}
	return c
}

// execProbe runs `sidecar probe <path>` in the sidecar's container.
func execProbe(path string) corev1.ProbeHandler {
	cmd := []string{sidecarBinary, "probe"}
	if path != "readyz" {
		cmd = append(cmd, path)
	}
	return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}
}
