package webhook

// DefaultImage is the sidecar image for profiles that name none, when
// Settings.Image is empty.
const DefaultImage = "ghcr.io/athenz-injector/athenz-sidecar:latest"

// Settings are the injector's own choices, the same for every Pod. The
// zero value works.
type Settings struct {
	// Version of the injector, recorded in athenz.io/status. Default: "dev".
	Version string
	// Image is the sidecar image for profiles that name none.
	// Default: DefaultImage.
	Image string
	// Namespace is the injector's own namespace. Pods there, like Pods in
	// kube-system, are never touched; profiles there apply to every
	// namespace that has none. Default: none.
	Namespace string
}

func (s Settings) version() string {
	if s.Version == "" {
		return "dev"
	}
	return s.Version
}

func (s Settings) image() string {
	if s.Image == "" {
		return DefaultImage
	}
	return s.Image
}

// untouchable reports whether the injector must leave every object of the
// namespace alone.
func (s Settings) untouchable(namespace string) bool {
	return namespace == "kube-system" || (s.Namespace != "" && namespace == s.Namespace)
}
