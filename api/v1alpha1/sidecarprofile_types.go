package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SidecarProfile tells the injector how to wire the Athenz sidecar into the
// Pods that use it: where ZTS is, how the sidecar proves the Pod's identity,
// how namespace and service account map to an Athenz domain and service, and
// the sidecar container itself.
//
// A Pod uses the profile named in its athenz.io/profile annotation (else
// "default") in its namespace, else the one of that name in the injector's
// namespace if spec.identityPolicy lets it serve the Pod's namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=athenz
// +kubebuilder:printcolumn:name="ZTS",type=string,JSONPath=`.spec.zts.url`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.identity.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SidecarProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SidecarProfileSpec   `json:"spec"`
	Status SidecarProfileStatus `json:"status,omitzero"`
}

// SidecarProfileList is a list of SidecarProfiles.
//
// +kubebuilder:object:root=true
type SidecarProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SidecarProfile `json:"items"`
}

// SidecarProfileSpec is the desired wiring of the sidecar.
type SidecarProfileSpec struct {
	// ZTS is the Athenz token service the sidecar talks to.
	ZTS ZTS `json:"zts"`

	// Identity says how the sidecar obtains the Pod's X.509 identity.
	Identity Identity `json:"identity"`

	// DomainTemplate builds the Pod's Athenz domain from its namespace and
	// service account. Placeholders: {namespace} (the namespace with '-'
	// read as '.' and "--" as '-'), {namespace.raw}, {serviceaccount},
	// {serviceaccount.domain} and {serviceaccount.service} (the service
	// account name split at its last '.', as ZTS's built-in Kubernetes
	// provider expects). Default: "{namespace}".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DomainTemplate string `json:"domainTemplate,omitempty"`

	// ServiceTemplate builds the Pod's Athenz service, with the placeholders
	// of DomainTemplate. Default: "{serviceaccount}".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceTemplate string `json:"serviceTemplate,omitempty"`

	// Sidecar is the injected container: image, resources, ports and
	// policies.
	// +optional
	Sidecar Sidecar `json:"sidecar,omitzero"`

	// Prefetch lists the tokens the sidecar fetches before it reports ready,
	// each "<domain>:role.<role>" or "<domain>:domain". The Pod annotation
	// athenz.io/prefetch replaces this list.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9_][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*:(domain|role\.[a-zA-Z0-9_][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*)$`
	Prefetch []string `json:"prefetch,omitempty"`

	// TokenFiles lists the tokens the sidecar keeps as files for apps that
	// read files rather than call its API, each
	// "accesstoken:<domain>:role.<role>" or "roletoken:<domain>:role.<role>":
	// /var/run/athenz/tokens/<domain>/<role>.accesstoken (or .roletoken),
	// written before the sidecar reports ready and refreshed ahead of
	// expiry. The Pod annotation athenz.io/token-files replaces this list.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^(accesstoken|roletoken):[a-zA-Z0-9_][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*:role\.[a-zA-Z0-9_][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*$`
	TokenFiles []string `json:"tokenFiles,omitempty"`

	// ProxyTLSHosts lists the upstream hosts, in the syntax of
	// ProxyAllowedHosts plus "*" (every host) and "*:port", that the
	// sidecar's proxy calls over TLS, presenting the Pod's certificate,
	// when the app sends it a plain http:// request (TLS origination).
	// Empty: none; an app can still ask per request.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[^,\s]+$`
	ProxyTLSHosts []string `json:"proxyTLSHosts,omitempty"`

	// ProxyAllowedHosts lists the upstream hosts the sidecar's forward proxy
	// may send tokens to. Empty: every host (see the sidecar docs).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[^,\s]+$`
	ProxyAllowedHosts []string `json:"proxyAllowedHosts,omitempty"`

	// InjectContainers names the containers (app and init containers) that
	// get the identity volume and the ATHENZ_* variables. Names that a Pod
	// does not have are ignored. Empty: every container but the sidecar and
	// the containers of service meshes (istio-proxy, linkerd-proxy and
	// their init containers). The Pod annotation athenz.io/inject-containers
	// replaces this list.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	InjectContainers []string `json:"injectContainers,omitempty"`

	// Revision names this profile as one revision of the sidecar, so that
	// a new sidecar can be rolled out namespace by namespace: a Pod whose
	// own label or whose namespace's label athenz.io/rev is R, and that
	// names no profile with athenz.io/profile, uses the profile whose
	// revision is R (in its namespace, else in the injector's namespace)
	// instead of "default". Injected Pods carry the label athenz.io/rev
	// with the revision of the profile they got.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Revision string `json:"revision,omitempty"`

	// IdentityPolicy bounds the Athenz identities this profile gives: which
	// namespaces may use it, and which identities besides the one its
	// templates give Pods may claim with the athenz.io/domain and
	// athenz.io/service annotations. Unset: the profile named "default" in
	// the injector's namespace serves every namespace, another profile
	// there serves none, and the annotations are refused. The injector
	// enforces it at admission and the provider callback at every register
	// and refresh (docs/security.md).
	// +optional
	IdentityPolicy IdentityPolicy `json:"identityPolicy,omitzero"`
}

// IdentityPolicy is the platform team's bound on the identities of a
// profile. In the injector's namespace (which tenants cannot write) it
// says what each namespace may become; in a tenant's namespace it can only
// narrow that: whatever such a profile gives must also be allowed by a
// profile of the injector's namespace that serves the namespace.
type IdentityPolicy struct {
	// NamespaceSelector selects the namespaces this profile serves, for a
	// profile in the injector's namespace; a Pod elsewhere that names it in
	// athenz.io/profile is refused. {} selects every namespace. Unset:
	// every namespace for the profile named "default", none for another
	// name. Ignored in other namespaces, whose profiles serve only their own.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// AllowedIdentities are the identities, besides the one the templates
	// give, that Pods may claim with athenz.io/domain and athenz.io/service,
	// or that a tenant's own profile may give them. Empty: only the
	// templates' identity; the annotations are refused.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	AllowedIdentities []AllowedIdentity `json:"allowedIdentities,omitempty"`
}

// AllowedIdentity lets the Pods of some namespaces claim some identities.
// It applies to the namespaces listed in namespaces and to those that
// namespaceSelector selects; with neither, to every namespace the profile
// serves, and then every domain must contain {namespace} (or
// {namespace.raw}), so that each namespace gets only names of its own.
//
// +kubebuilder:validation:XValidation:rule="has(self.namespaces) || has(self.namespaceSelector) || self.domains.all(d, d.contains('{namespace'))",message="without namespaces or namespaceSelector the entry applies to every namespace: each domain must contain {namespace}, or set namespaceSelector: {} to allow a fixed domain to every namespace",fieldPath=".domains"
type AllowedIdentity struct {
	// Namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects namespaces by label; {} selects every
	// namespace the profile serves.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Domains the Pods may claim. Each is a domain template with the
	// placeholders of domainTemplate, such as "shop", "{namespace}" or
	// "k8s.{namespace}"; a trailing ".*" allows every subdomain below it
	// (one or more more labels): "shop.*" allows shop.batch and
	// shop.batch.jobs, not shop.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[-a-zA-Z0-9_.{}]+(\.\*)?$`
	Domains []string `json:"domains"`

	// Services the Pods may claim in those domains: service templates
	// (placeholders of serviceTemplate), or "*" for any service. Empty: the
	// service the profile's serviceTemplate gives; athenz.io/service is
	// refused.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*|[-a-zA-Z0-9_.{}]+)$`
	Services []string `json:"services,omitempty"`
}

// ZTS locates the Athenz token service.
type ZTS struct {
	// URL is the ZTS base URL, e.g. https://zts.example.com:4443/zts/v1.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="must be an https:// URL such as https://zts.example.com:4443/zts/v1"
	URL string `json:"url"`

	// CA is the bundle the sidecar trusts for ZTS. For a profile in the
	// injector's namespace it is read there, and the injector keeps a copy
	// in every namespace (ConfigMap athenz-zts-ca-<profile>, key ca.pem),
	// which the Pods mount; for a profile in a Pod's own namespace it is
	// read in that namespace. Unset: the sidecar image's system roots.
	// +optional
	CA *CABundle `json:"ca,omitempty"`
}

// CABundle names one key of a ConfigMap or of a Secret that holds PEM
// certificates.
// +kubebuilder:validation:XValidation:rule="has(self.configMap) != has(self.secret)",message="set exactly one of configMap and secret"
type CABundle struct {
	// ConfigMap holding the bundle, in the profile's namespace.
	// +optional
	ConfigMap *KeyReference `json:"configMap,omitempty"`
	// Secret holding the bundle, in the profile's namespace.
	// +optional
	Secret *KeyReference `json:"secret,omitempty"`
}

// KeyReference names a key of a ConfigMap or Secret in the Pod's namespace.
type KeyReference struct {
	// Name of the ConfigMap or Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// IdentityMode is how the sidecar obtains the Pod's certificate.
// +kubebuilder:validation:Enum=copper-argos;key-file;files
type IdentityMode string

// Identity modes, as ATHENZ_IDENTITY_MODE spells them.
const (
	// IdentityCopperArgos registers the Pod with ZTS, attested by its
	// projected service account token.
	IdentityCopperArgos IdentityMode = "copper-argos"
	// IdentityKeyFile uses a service private key from a Secret.
	IdentityKeyFile IdentityMode = "key-file"
	// IdentityFiles reads a certificate and key that something else writes.
	IdentityFiles IdentityMode = "files"
)

// AttestationFormat is how the service account token is sent to ZTS.
// +kubebuilder:validation:Enum=token;id-token-json
type AttestationFormat string

// Attestation formats, as ATHENZ_ATTESTATION_FORMAT spells them.
const (
	// AttestationToken sends the bare JWT (an HTTP provider such as the
	// injector's callback).
	AttestationToken AttestationFormat = "token"
	// AttestationIDTokenJSON sends {"identityToken": ...} (ZTS's built-in
	// Kubernetes provider).
	AttestationIDTokenJSON AttestationFormat = "id-token-json"
)

// CertRenewal is how the sidecar renews its certificate.
// +kubebuilder:validation:Enum=refresh;reregister
type CertRenewal string

// Renewal methods, as ATHENZ_CERT_RENEWAL spells them.
const (
	// RenewalRefresh refreshes over mTLS with the current certificate.
	RenewalRefresh CertRenewal = "refresh"
	// RenewalReregister registers again with a fresh attestation (ZTS's
	// built-in provider refuses refresh).
	RenewalReregister CertRenewal = "reregister"
)

// Identity says how the sidecar obtains the Pod's identity.
//
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode != 'copper-argos') || has(self.provider)",message="provider is required in copper-argos mode",fieldPath=".provider",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode != 'copper-argos') || has(self.dnsSuffix)",message="dnsSuffix is required in copper-argos mode",fieldPath=".dnsSuffix",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'key-file' || has(self.keyFile)",message="keyFile is required in key-file mode",fieldPath=".keyFile",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'files' || has(self.files)",message="files is required in files mode",fieldPath=".files",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.keyFile) || (has(self.mode) && self.mode == 'key-file')",message="keyFile is only used in key-file mode",fieldPath=".keyFile"
// +kubebuilder:validation:XValidation:rule="!has(self.files) || (has(self.mode) && self.mode == 'files')",message="files is only used in files mode",fieldPath=".files"
type Identity struct {
	// Mode: copper-argos (register with ZTS, attested by the Pod's service
	// account token), key-file (a service key from a Secret) or files (a
	// certificate and key issued by something else). Default: copper-argos.
	// +optional
	Mode IdentityMode `json:"mode,omitempty"`

	// Provider is the Athenz provider service that attests the Pod, e.g.
	// sys.auth.k8s. Required in copper-argos mode.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*$`
	Provider string `json:"provider,omitempty"`

	// DNSSuffix is the suffix of the certificate's DNS names, as the
	// provider is configured in ZTS. Required in copper-argos mode.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	DNSSuffix string `json:"dnsSuffix,omitempty"`

	// TokenAudience is the audience of the projected service account token
	// the sidecar presents to ZTS. Default: "athenz".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	TokenAudience string `json:"tokenAudience,omitempty"`

	// TrustDomain, when set, gives the certificate the SPIFFE URI
	// spiffe://<trustDomain>/ns/<namespace>/sa/<domain>.<service>.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$`
	TrustDomain string `json:"trustDomain,omitempty"`

	// AttestationFormat: token (the bare JWT, for an HTTP provider) or
	// id-token-json (for ZTS's built-in Kubernetes provider). Default: token.
	// +optional
	AttestationFormat AttestationFormat `json:"attestationFormat,omitempty"`

	// CertRenewal: refresh or reregister (ZTS's built-in provider refuses
	// refresh). Default: refresh.
	// +optional
	CertRenewal CertRenewal `json:"certRenewal,omitempty"`

	// KeyFile is the service key for key-file mode.
	// +optional
	KeyFile *KeyFileIdentity `json:"keyFile,omitempty"`

	// Files is the certificate and key for files mode.
	// +optional
	Files *FilesIdentity `json:"files,omitempty"`
}

// KeyFileIdentity is a service private key registered in Athenz.
type KeyFileIdentity struct {
	// Secret holds the PEM private key, in the Pod's namespace.
	Secret KeyReference `json:"secret"`
	// Version is the key's version (key id) in Athenz. Default: "0".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`
	Version string `json:"version,omitempty"`
}

// FilesIdentity is a Secret with a certificate and key that something else
// issues and rotates, such as cert-manager.
type FilesIdentity struct {
	// SecretName is the Secret, in the Pod's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// CertKey is the key of the PEM certificate chain. Default: tls.crt.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	CertKey string `json:"certKey,omitempty"`
	// KeyKey is the key of the PEM private key. Default: tls.key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	KeyKey string `json:"keyKey,omitempty"`
	// CAKey is the key of the PEM bundle of the CA that issued the
	// certificate, such as cert-manager's ca.crt. When set, the sidecar
	// copies it to /var/run/athenz/ca.cert.pem and app containers get
	// ATHENZ_CA_FILE; unset, they get no ATHENZ_CA_FILE, since nothing
	// would write the file. Default: unset.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	CAKey string `json:"caKey,omitempty"`
}

// NativeSidecarPolicy chooses how the sidecar runs.
// +kubebuilder:validation:Enum=Always;Never
type NativeSidecarPolicy string

// Native sidecar policies.
const (
	// NativeSidecarAlways runs the sidecar as an init container with
	// restartPolicy Always, so app containers start once it is ready.
	NativeSidecarAlways NativeSidecarPolicy = "Always"
	// NativeSidecarNever runs it as a regular container, with an init
	// container that fetches the identity first (clusters without native
	// sidecars).
	NativeSidecarNever NativeSidecarPolicy = "Never"
)

// HostNetworkPolicy chooses what happens to Pods with hostNetwork: true,
// where loopback is the node's and a token API on it would be open to every
// process on the node.
// +kubebuilder:validation:Enum=socket;deny
type HostNetworkPolicy string

// hostNetwork policies.
const (
	// HostNetworkSocket serves the token API only on a Unix socket in the
	// identity volume.
	HostNetworkSocket HostNetworkPolicy = "socket"
	// HostNetworkDeny refuses such Pods.
	HostNetworkDeny HostNetworkPolicy = "deny"
)

// Sidecar is the injected container.
type Sidecar struct {
	// Image of the sidecar. The Pod annotation athenz.io/sidecar-image
	// overrides it. Default: the injector's --sidecar-image.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of the sidecar. Default: Kubernetes' default.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Resources of the sidecar. Default: requests cpu 10m and memory 32Mi,
	// limit memory 64Mi. The Pod annotations athenz.io/sidecar-cpu and
	// athenz.io/sidecar-memory override the request (and the limit, when
	// one is set).
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Ports of the sidecar. The Pod annotations athenz.io/sidecar-api-port
	// and athenz.io/sidecar-health-port override them. hostNetwork Pods
	// open a health port only when the Pod annotation names one (a port
	// there is the node's, and two Pods of one profile on a node would
	// want the same): their probes ask the sidecar's Unix socket.
	// +optional
	Ports SidecarPorts `json:"ports,omitzero"`

	// NativeSidecar: Always (an init container with restartPolicy Always)
	// or Never (a regular container plus an init container). The Pod
	// annotation athenz.io/native-sidecar overrides it. Default: Always.
	// +optional
	NativeSidecar NativeSidecarPolicy `json:"nativeSidecar,omitempty"`

	// HostNetwork: what to do with hostNetwork Pods. socket serves the token
	// API on a Unix socket in the identity volume only; deny refuses them.
	// Default: socket.
	// +optional
	HostNetwork HostNetworkPolicy `json:"hostNetwork,omitempty"`

	// RunAsUser is the sidecar's user ID. The Pod annotation
	// athenz.io/sidecar-run-as-user overrides it. Default: 65532. Whatever
	// the user, app containers of any UID can read the identity files
	// (the key is 0644 in a Pod without an fsGroup, 0640 with one).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	RunAsUser *int64 `json:"runAsUser,omitempty"`

	// RunAsGroup is the sidecar's group ID. The Pod annotation
	// athenz.io/sidecar-run-as-group overrides it. Default: 65532.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`

	// InitOnly adds only an init container that fetches the identity files
	// and exits, with no sidecar that keeps running: no token API, no
	// rotation (for batch Pods that finish before the certificate expires,
	// as Vault's agent-pre-populate-only). The Pod annotation
	// athenz.io/init-only overrides it. Default: false.
	// +optional
	InitOnly bool `json:"initOnly,omitempty"`

	// ImagePullSecrets are added to the Pod's spec.imagePullSecrets (those
	// it does not list already), for a sidecar image in a private
	// registry. They must exist in the Pod's namespace. The Pod annotation
	// athenz.io/image-pull-secrets (comma-separated names) replaces them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Placement of the sidecar among the Pod's init containers. Auto: after
	// the native sidecars of a service mesh (istio-proxy, linkerd-proxy)
	// when the Pod has them, so that the mesh carries the sidecar's calls
	// to ZTS, else first; the Pod's own init containers come after it and
	// can use the identity. First: always the first init container. Last:
	// after the Pod's own init containers, which then run without the
	// identity. The Pod annotation athenz.io/sidecar-placement overrides
	// it. Default: Auto.
	// +optional
	Placement SidecarPlacement `json:"placement,omitempty"`

	// ShutdownDelaySeconds keeps a sidecar that runs as a regular container
	// (nativeSidecar: Never) serving for this long after the Pod is told
	// to stop (a preStop sleep), so that an app that needs a token during
	// its own graceful shutdown still gets one. Kubernetes sends SIGTERM to
	// regular containers all at once; a native sidecar stops after the app
	// and needs no delay. At most the Pod's terminationGracePeriodSeconds.
	// The Pod annotation athenz.io/sidecar-shutdown-delay-seconds overrides
	// it. Default: 5 (0 turns the delay off).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	ShutdownDelaySeconds *int32 `json:"shutdownDelaySeconds,omitempty"`
}

// SidecarPlacement chooses where the sidecar goes among the Pod's init
// containers.
// +kubebuilder:validation:Enum=Auto;First;Last
type SidecarPlacement string

// Sidecar placements.
const (
	// PlacementAuto puts the sidecar after a service mesh's native proxy
	// sidecar when the Pod has one, else first.
	PlacementAuto SidecarPlacement = "Auto"
	// PlacementFirst makes the sidecar the first init container.
	PlacementFirst SidecarPlacement = "First"
	// PlacementLast puts the sidecar after the Pod's own init containers.
	PlacementLast SidecarPlacement = "Last"
)

// SidecarPorts are the sidecar's listening ports.
// +kubebuilder:validation:XValidation:rule="(has(self.api) ? self.api : 8081) != (has(self.health) ? self.health : 8082)",message="api and health must be different ports"
type SidecarPorts struct {
	// API is the token API port, on 127.0.0.1 only. Default: 8081.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	API int32 `json:"api,omitempty"`
	// Health is the port of /healthz, /readyz and /metrics, on all
	// interfaces (kubelet probes the Pod IP). Default: 8082.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Health int32 `json:"health,omitempty"`
}

// SidecarProfileStatus is what the injector observed of the profile.
type SidecarProfileStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the injector can use the profile; when
	// False, its message names the field at fault.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// InjectorVersion is the version of the injector that last checked the
	// profile (each injector checks every profile when it starts): the one
	// that injects with it now. kubectl athenz status flags the Pods that an
	// injector of another version injected.
	// +optional
	InjectorVersion string `json:"injectorVersion,omitempty"`
}

// ConditionReady is the condition type the injector sets on profiles.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	ReasonValid   = "Valid"
	ReasonInvalid = "Invalid"
)
