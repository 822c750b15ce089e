package framework

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// InjectorOptions configure StartInjector.
type InjectorOptions struct {
	// Binary is the injector executable. Required.
	Binary string
	// Kubeconfig is the identity it acts as. Required.
	Kubeconfig string
	// Namespace is its --namespace (the release namespace). Required.
	Namespace string
	// CertDir holds tls.crt and tls.key. Required.
	CertDir string
	// WebhookPort is its --webhook-port on 127.0.0.1. Default: a free port.
	WebhookPort int
	// Dir receives its log. Required.
	Dir string
	// Args are more flags, e.g. --sidecar-image.
	Args []string
	// ReadyTimeout bounds the wait for /readyz. Default 60 s.
	ReadyTimeout time.Duration
}

// Injector is a running injector process.
type Injector struct {
	*Process
	// WebhookURL is the base URL of its webhooks (https://127.0.0.1:<port>).
	WebhookURL string
	// ReadyzURL is its readiness endpoint.
	ReadyzURL string
	// Args are its arguments.
	Args []string
}

// StartInjector starts the injector serving its webhooks on 127.0.0.1
// (metrics off) and waits until /readyz answers 200: certificate loaded,
// webhook server up, caches synced.
func StartInjector(ctx context.Context, o InjectorOptions) (*Injector, error) {
	if o.WebhookPort == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.WebhookPort = p
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	health, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + o.Kubeconfig,
		"--namespace=" + o.Namespace,
		"--webhook-port=" + strconv.Itoa(o.WebhookPort),
		"--cert-dir=" + o.CertDir,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=" + health,
	}, o.Args...)
	cmd := exec.Command(o.Binary, args...)
	cmd.Env = []string{} // no KUBECONFIG or POD_NAMESPACE from the caller
	p, err := StartProcess("injector", cmd, filepath.Join(o.Dir, "injector.log"))
	if err != nil {
		return nil, err
	}
	inj := &Injector{
		Process:    p,
		WebhookURL: fmt.Sprintf("https://127.0.0.1:%d", o.WebhookPort),
		ReadyzURL:  "http://" + health + "/readyz",
		Args:       args,
	}
	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	err = Wait(ctx, "the injector's readiness ("+inj.ReadyzURL+")", func(ctx context.Context) (bool, string, error) {
		if exited, err := p.Exited(); exited {
			return false, "", fmt.Errorf("the injector exited: %v", err)
		}
		return httpOK(ctx, hc, inj.ReadyzURL+"?verbose")
	})
	if err != nil {
		_ = p.Stop(0)
		return nil, fmt.Errorf("%w\ninjector log (%s):\n%s", err, p.LogPath, p.Log(30))
	}
	return inj, nil
}
