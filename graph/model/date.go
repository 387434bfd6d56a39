package model

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// DateLayout is how the Date scalar is written.
const DateLayout = "2006-01-02"

// MarshalDate writes a UTC calendar date.
func MarshalDate(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(t.UTC().Format(DateLayout)))
	})
}

// UnmarshalDate reads YYYY-MM-DD as midnight UTC.
func UnmarshalDate(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.New(apperr.BadInput, "expected a date written like 2026-01-31, got "+Describe(v))
	}
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		// Never the whole of a long value back.
		return time.Time{}, apperr.New(apperr.BadInput, "expected a date written like 2026-01-31, got "+shortQuote(s))
	}
	return t, nil
}
