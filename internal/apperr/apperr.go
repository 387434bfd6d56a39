// Package apperr defines the errors that domain services return when the
// caller, not the system, is at fault. The GraphQL error presenter is the one
// place that turns them into client-facing codes; anything that is not an
// *Error is treated as internal and never shown to a client.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error code, shown to clients as extensions.code.
type Code string

// Codes that clients can rely on.
const (
	Unauthenticated         Code = "UNAUTHENTICATED"
	Forbidden               Code = "FORBIDDEN"
	NotFound                Code = "NOT_FOUND"
	UsageLimitExceeded      Code = "USAGE_LIMIT_EXCEEDED"
	RateLimited             Code = "RATE_LIMITED"
	BadInput                Code = "BAD_USER_INPUT"
	StripeNotConfigured     Code = "STRIPE_NOT_CONFIGURED"
	PaymentProviderRejected Code = "PAYMENT_PROVIDER_REJECTED"
	// Unavailable means a dependency (the database, Stripe) is briefly
	// unavailable: the error presenter adds extensions.retryable and a
	// requestId. A write may or may not have landed before the connection
	// failed, so retry it; recordUsage with the same idempotency keys is
	// safe to retry.
	Unavailable Code = "UNAVAILABLE"
	Internal    Code = "INTERNAL"
)

// ReasonPaymentProvider is extensions.reason of an UNAVAILABLE error when
// the dependency that failed is Stripe (down, overloaded, rate limiting,
// unreachable): the client retries it like any other outage.
const ReasonPaymentProvider = "PAYMENT_PROVIDER_UNAVAILABLE"

// Error is an error whose message is safe to show to the client.
type Error struct {
	Code    Code
	Message string
	// Extensions are extra fields for the client (for example the meter and
	// limit of a quota failure).
	Extensions map[string]any
	// Err is the underlying cause; it is logged, never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a client-safe error.
func New(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Wrap returns a client-safe error that keeps cause for logs.
func Wrap(code Code, msg string, cause error) *Error {
	return &Error{Code: code, Message: msg, Err: cause}
}

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	// AsType, unlike errors.As, does not move its target to the heap: this
	// runs on every request.
	return errors.AsType[*Error](err)
}

// CodeOf returns err's code, or Internal when it carries none.
func CodeOf(err error) Code {
	if e, ok := As(err); ok {
		return e.Code
	}
	return Internal
}

// ErrNotFound is returned by lookups scoped to an organisation when the row
// does not exist or belongs to another organisation; the two are deliberately
// indistinguishable.
var ErrNotFound = New(NotFound, "not found")

// ArgError is a query argument the client got wrong: BAD_USER_INPUT naming
// the argument in extensions.field, as a mutation's userError names it.
func ArgError(field, msg string) *Error {
	return &Error{Code: BadInput, Message: msg, Extensions: map[string]any{"field": field}}
}

// BadCursor is every list's answer to an `after` that is not one of its
// cursors; cause is kept for logs.
func BadCursor(cause error) *Error {
	e := ArgError("after", "after is not a cursor from this list")
	e.Err = cause
	return e
}

// NoneOf is a query argument naming no what of the organisation's (or
// another organisation's: the two are indistinguishable): NOT_FOUND with
// the field and the wording of the mutations' NOT_FOUND userErrors.
func NoneOf(field, what string) *Error {
	return &Error{Code: NotFound, Message: "No such " + what + " in this organisation.", Extensions: map[string]any{"field": field}}
}

// FieldError is a validation failure on one input field, shown to clients as
// a userErrors entry on a mutation payload.
type FieldError struct {
	Field   string
	Message string
	Code    string
}

func (f FieldError) Error() string { return f.Field + ": " + f.Message }

// FieldErrors collects validation failures.
type FieldErrors []FieldError

// Add records one failure.
func (fe *FieldErrors) Add(field, code, msg string) {
	*fe = append(*fe, FieldError{Field: field, Code: code, Message: msg})
}

// Err returns nil when there are no failures.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return fe
}

func (fe FieldErrors) Error() string {
	if len(fe) == 0 {
		return "no validation errors"
	}
	return fmt.Sprintf("%d validation error(s), first: %s", len(fe), fe[0].Error())
}

// AsFieldErrors finds validation failures in err's chain.
func AsFieldErrors(err error) (FieldErrors, bool) {
	return errors.AsType[FieldErrors](err)
}
