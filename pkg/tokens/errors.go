package tokens

import (
	"errors"
	"fmt"
)

// FieldError is a client mistake in one field of a token request. The
// sidecar answers it with 400 and the message, which names the field.
type FieldError struct {
	Field string // e.g. "domain", "role", "expiry"
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// ZTSError is an answer from ZTS other than success: its HTTP status and the
// message from its {code,message} body. A 4xx is the caller's problem (no
// such domain, role not granted) and is passed on as it is; a 5xx is ZTS's.
type ZTSError struct {
	Status  int
	Message string
}

func (e *ZTSError) Error() string { return fmt.Sprintf("zts answered %d: %s", e.Status, e.Message) }

// ErrZTSUnavailable wraps failures to reach ZTS at all (connection refused,
// TLS failure, a body that is not ZTS's); the sidecar answers 502.
var ErrZTSUnavailable = errors.New("zts unavailable")

// ErrZTSTimeout wraps calls that ran out of time; the sidecar answers 504.
var ErrZTSTimeout = errors.New("zts timed out")
