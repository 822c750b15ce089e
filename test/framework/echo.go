package framework

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Echo is an HTTP upstream on 127.0.0.1 that answers every request with
// the request's headers as JSON and remembers them, to see what a proxy
// added and removed.
type Echo struct {
	*httptest.Server

	mu   sync.Mutex // guards last
	last http.Header
}

// StartEcho starts an Echo. Close stops it.
func StartEcho() *Echo {
	e := &Echo{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.last = r.Header.Clone()
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": r.Header})
	}))
	return e
}

// LastHeaders returns the headers of the last request, nil before one.
func (e *Echo) LastHeaders() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Clone()
}
