package model

import (
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// MarshalTime writes RFC 3339 with nanoseconds, as gqlgen's Time does.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// UnmarshalTime reads what gqlgen's Time reads. gqlgen's own error is a plain
// error that the error presenter must treat as INTERNAL (gqlgen issue 772);
// a time the client wrote badly is BAD_USER_INPUT.
func UnmarshalTime(v any) (time.Time, error) {
	t, err := graphql.UnmarshalTime(v)
	// gqlgen reads "" as year 1; no client means that.
	if err != nil || t.IsZero() {
		return time.Time{}, apperr.New(apperr.BadInput, "Time must be an RFC 3339 string like 2026-01-31T12:00:00Z")
	}
	return t, nil
}
