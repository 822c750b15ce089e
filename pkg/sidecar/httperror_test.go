package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// TestToHTTPError: what the app is told for each kind of failure.
func TestToHTTPError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"a bad field", &tokens.FieldError{Field: "domain", Err: errors.New("is required")}, http.StatusBadRequest},
		{"ZTS 403", &tokens.ZTSError{Status: 403, Message: "not a member"}, http.StatusForbidden},
		{"ZTS 503", &tokens.ZTSError{Status: 503, Message: "down"}, http.StatusBadGateway},
		{"ZTS unreachable", fmt.Errorf("role token: %w: connection refused", tokens.ErrZTSUnavailable), http.StatusBadGateway},
		{"ZTS timeout", fmt.Errorf("role token: %w", tokens.ErrZTSTimeout), http.StatusGatewayTimeout},
		{"token expired on arrival", fmt.Errorf("%w: it expired at ...", tokens.ErrTokenExpired), http.StatusBadGateway},
		{"shutting down", tokens.ErrCacheClosed, http.StatusServiceUnavailable},
		{"client gone", context.Canceled, 499},
		{"our bug", errors.New("nil map"), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := toHTTPError(tc.err); got.Code != tc.want {
				t.Errorf("toHTTPError(%v) = %d %q, want %d", tc.err, got.Code, got.Msg, tc.want)
			}
		})
	}
}
