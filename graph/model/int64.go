package model

import (
	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// MarshalInt64 writes a JSON number, as gqlgen's Int64 does.
func MarshalInt64(n int64) graphql.Marshaler { return graphql.MarshalInt64(n) }

// UnmarshalInt64 reads what gqlgen's Int64 reads. A fraction or a number out
// of range is the client's mistake (BAD_USER_INPUT), not the plain error
// gqlgen returns, which the error presenter must treat as INTERNAL.
func UnmarshalInt64(v any) (int64, error) {
	n, err := graphql.UnmarshalInt64(v)
	if err != nil {
		return 0, apperr.New(apperr.BadInput, "Int64 must be a whole number from -9223372036854775808 to 9223372036854775807")
	}
	return n, nil
}
