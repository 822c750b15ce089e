package app

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// DefaultShutdownDrain is --shutdown-drain's default.
const DefaultShutdownDrain = 5 * time.Second

// drainer lets a stopping injector close its keep-alive connections from
// the client's side. The API server keeps idle HTTP/1.1 connections to
// each replica (through the Service, so they outlive the replica's
// removal from its endpoints) and does not retry an admission POST. A
// server that shuts down closes its idle connections, and one the API
// server is just sending a request on fails that admission with EOF
// (docs/design/2026-12-02-injector-availability.md). While draining, every
// response says "Connection: close", so each such connection is closed by
// the API server after its next answer; what is still idle at the end of
// the drain has been idle for the whole of it, and is the least likely to
// be picked.
type drainer struct {
	on atomic.Bool
}

// wrap returns h answering with "Connection: close" once draining.
func (d *drainer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.on.Load() {
			// net/http closes the connection after this response.
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// stopAfterDrain returns a context for the manager that is canceled drain
// after ctx is, with d draining in between; stop releases it early. With
// no drain the manager stops with ctx.
func (d *drainer) stopAfterDrain(ctx context.Context, drain time.Duration, log logr.Logger) (mgrCtx context.Context, stop context.CancelFunc) {
	if drain <= 0 {
		return context.WithCancel(ctx)
	}
	mgrCtx, stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
		case <-mgrCtx.Done():
			return
		}
		d.on.Store(true)
		log.Info("stopping: serving for the drain, asking clients to close their connections", "drain", drain)
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
		case <-mgrCtx.Done():
		}
		stop()
	}()
	return mgrCtx, stop
}
