package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// assetsEnv names the directory with kube-apiserver and etcd.
const assetsEnv = "KUBEBUILDER_ASSETS"

// cp is the control plane every test of the package shares.
var cp struct {
	cfg   *rest.Config
	k8s   client.Client // live, uncached
	cache cache.Cache   // informers for Namespaces and SidecarProfiles
	// reader reads Pods from a provider.PodCache and the rest from cache,
	// as the injector does.
	reader client.Reader
	cs     kubernetes.Interface // TokenRequest and TokenReview
	// saKey signs the API server's service account tokens; tests use it
	// to age a token the API server issued.
	saKey crypto.Signer
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	assets := os.Getenv(assetsEnv)
	if assets == "" {
		return 0, errors.New(assetsEnv + " is not set: these tests need a real kube-apiserver and etcd; run " +
			"`KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./pkg/webhook/provider/` (the build is cached)")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return 0, fmt.Errorf("%s=%s has no %s (%v): build it with hack/build-control-plane.sh", assetsEnv, assets, bin, err)
		}
	}
	root, err := webhooktest.RepoRoot()
	if err != nil {
		return 0, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return 0, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return 0, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		CRDInstallOptions:     envtest.CRDInstallOptions{Scheme: scheme},
	}
	cfg, err := env.Start()
	if err != nil {
		return 0, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}()
	cp.cfg = cfg
	if cp.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	if cp.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return 0, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(env.ControlPlane.GetAPIServer().CertDir, "sa-signer.key"))
	if err != nil {
		return 0, fmt.Errorf("reading the API server's service account signing key: %w", err)
	}
	if cp.saKey, err = parseKey(keyPEM); err != nil {
		return 0, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Pods are cached as the injector caches them (provider.PodCache);
	// Namespaces and SidecarProfiles in an informer cache.
	if cp.cache, err = cache.New(cfg, cache.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	pods := provider.NewPodCache(cp.cs)
	go func() { _ = pods.Start(ctx) }()
	cp.reader = podsAnd{pods: pods, Reader: cp.cache}
	for _, obj := range []client.Object{&corev1.Namespace{}, &v1alpha1.SidecarProfile{}} {
		if _, err := cp.cache.GetInformer(ctx, obj); err != nil {
			return 0, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- cp.cache.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cp.cache.WaitForCacheSync(syncCtx) || !toolscache.WaitForCacheSync(syncCtx.Done(), pods.HasSynced) {
		return 0, errors.New("the informer cache did not sync")
	}
	if err := setupProfiles(ctx); err != nil {
		return 0, err
	}
	code := m.Run()
	cancel()
	if err := <-cacheDone; err != nil {
		return code, fmt.Errorf("informer cache: %w", err)
	}
	return code, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("service account signing key is not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("service account signing key: unsupported PEM block %q", block.Type)
}

// signJWS signs a JWS payload as the API server does: ES256 (r||s) for an
// EC key, RS256 for an RSA key.
func signJWS(key crypto.Signer, signed string) ([]byte, error) {
	sum := sha256.Sum256([]byte(signed))
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	}
	return nil, fmt.Errorf("unsupported key %T", key)
}

// podsAnd reads Pods from pods and everything else from Reader.
type podsAnd struct {
	pods *provider.PodCache
	client.Reader
}

func (r podsAnd) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Pod); ok {
		return r.pods.Get(ctx, key, obj, opts...)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}
