package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/version"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
	"github.com/athenz-injector/athenz-injector/test/load/proc"
)

// The bare webhook is the baseline of the admission figures, as the bare
// net/http server is the sidecar's: a TLS server that reads each
// AdmissionReview for its uid only and answers a patch fixed in advance,
// the one the injector would answer for the harness's Pods. Every create
// it serves pays what any mutating webhook costs the API server (the
// call, the connections a burst opens, applying the patch); the injector's
// figures next to it show what the injector adds.
//
// It runs as its own process, the harness binary started again with
// -serve-bare, placed on the CPUs the injector would have.

// bareFlags are the harness's flags for its bare-webhook mode.
type bareFlags struct {
	addr, health, certDir, patchFile string
}

// serveBare serves the bare webhook until SIGINT or SIGTERM.
func serveBare(f bareFlags) error {
	patch, err := os.ReadFile(f.patchFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(f.certDir, "tls.crt"), filepath.Join(f.certDir, "tls.key"))
	if err != nil {
		return err
	}
	encoded := base64.StdEncoding.EncodeToString(patch)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+webhook.PathPods, func(w http.ResponseWriter, r *http.Request) {
		var review struct {
			Request *struct {
				UID string `json:"uid"`
			} `json:"request"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 3<<20)).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "request: not an AdmissionReview", http.StatusBadRequest)
			return
		}
		uid, _ := json.Marshal(review.Request.UID)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%s,"allowed":true,"patchType":"JSONPatch","patch":%q}}`, uid, encoded)
	})
	// Like the injector's server: TLS 1.2 or later, HTTP/1.1, Go's
	// default key exchanges.
	srv := &http.Server{
		Addr:              f.addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
	}
	health := &http.Server{
		Addr:              f.health,
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServeTLS("", "") }()
	go func() { errc <- health.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// The harness stops it once its rounds are over: nothing is in flight.
	return errors.Join(srv.Close(), health.Close())
}

// barePatch is the patch the injector answers for the harness's opted-in
// Pods: BuildPatch on the Pod the API server sends the webhook, obtained
// with a dry-run create (defaults and the ServiceAccount admission plugin
// applied, as at admission).
func barePatch(ctx context.Context, k8s client.Client, profile *v1alpha1.SidecarProfile) ([]byte, error) {
	pod := benchPod("dry-run", false)
	if err := k8s.Create(ctx, pod, client.DryRunAll); err != nil {
		return nil, fmt.Errorf("dry-run create: %w", err)
	}
	pod.Annotations = map[string]string{webhook.AnnotationInject: "true"}
	ops, err := webhook.BuildPatch(pod, profile, webhook.Settings{Version: version.Version, Namespace: injectorNamespace})
	if err != nil {
		return nil, err
	}
	return json.Marshal(ops)
}

// startBare starts the bare webhook for cp, on cpus (nil: any), and
// returns a function that stops it.
func startBare(ctx context.Context, cp *webhooktest.ControlPlane, patch []byte, cpus []int) (func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "admission-bare")
	if err != nil {
		return nil, err
	}
	patchFile := filepath.Join(dir, "patch.json")
	if err := os.WriteFile(patchFile, patch, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	health, err := proc.FreeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(self, "-serve-bare="+net.JoinHostPort(cp.WebhookHost, fmt.Sprint(cp.WebhookPort)),
		"-bare-health="+health, "-bare-cert-dir="+cp.CertDir, "-bare-patch="+patchFile)
	stop, err := startProcess(ctx, cmd, cpus, "http://"+health+"/")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return func() { stop(); os.RemoveAll(dir) }, nil
}
