package sidecar

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// DefaultInitTimeout bounds --mode=init: an init container that waits
// forever for ZTS would hide the problem behind a Pod stuck in Init.
const DefaultInitTimeout = 5 * time.Minute

// RunInit is --mode=init, for clusters without native sidecars: it gets the
// identity once (writing the certificate, key and CA to the identity
// directory), fetches every prefetch token once and writes the token
// files, so that a Pod whose identity or tokens cannot be had fails in its
// init container with the reason, before the app starts. It returns nil
// when all of that worked.
func RunInit(ctx context.Context, cfg Config, log logr.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Dev {
		return errors.New("--mode=init with --dev: dev mode's fake ZTS lives in the serving process; use --mode=serve")
	}
	if cfg.Clock == nil {
		cfg.Clock = tokens.RealClock{}
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultInitTimeout)
	defer cancel()

	id, err := NewIdentity(cfg, IdentityOptions{Logger: log.WithName("identity"), Clock: cfg.Clock})
	if err != nil {
		return err
	}
	if err := id.Init(ctx); err != nil {
		return fmt.Errorf("getting the identity: %w", err)
	}
	log.Info("identity written", "dir", cfg.IdentityDir, "domain", cfg.Domain, "service", cfg.Service)

	client, err := tokens.NewClient(tokens.ClientOptions{URL: cfg.ZTSURL, Transport: id.Transport(), Timeout: cfg.ZTSTimeout, Clock: cfg.Clock})
	if err != nil {
		return fmt.Errorf("ATHENZ_ZTS_URL: %w", err)
	}
	items, err := prefetchItems(cfg.Prefetch, cfg.PrefetchRoleTokens, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, it := range items {
		if _, err := client.Fetch(ctx, it.key); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", it.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prefetching tokens: %w", err)
	}
	log.Info("prefetched tokens checked", "count", len(items))
	if len(cfg.TokenFiles) > 0 {
		files, err := newTokenFiles(cfg.identityDir(), cfg.TokenFiles, cfg.tokenFileMode(), nil, cfg.Clock, log.WithName("tokenfiles"))
		if err != nil {
			return err
		}
		if err := files.writeOnce(ctx, client.Fetch); err != nil {
			return fmt.Errorf("writing token files: %w", err)
		}
		log.Info("token files written", "count", len(cfg.TokenFiles))
	}
	return nil
}
