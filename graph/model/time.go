package model

import (
	"fmt"
	"regexp"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// MarshalTime writes RFC 3339 with nanoseconds, as gqlgen's Time does.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// The years a Time may fall in (UTC), as for every period and date the
// services take: an earlier or later one is a client's mistake.
const (
	MinTimeYear = 2000
	MaxTimeYear = 9999
)

// longYear is the start of a timestamp whose year has five digits or more,
// which RFC 3339 cannot write; it is reported as the year it is.
var longYear = regexp.MustCompile(`^[+-]?(\d{5,})-\d\d-\d\dT`)

// UnmarshalTime reads an RFC 3339 timestamp from MinTimeYear to MaxTimeYear.
// A value it refuses is BAD_USER_INPUT with a message that names the rule
// broken: gqlgen's own error is a plain error the error presenter must
// treat as INTERNAL (gqlgen issue 772).
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.New(apperr.BadInput, "Time must be an RFC 3339 string like 2026-01-31T12:00:00Z, got "+Describe(v))
	}
	yearRule := func(year string) error {
		return apperr.New(apperr.BadInput, fmt.Sprintf("Time's year must be from %d to %d (UTC), got %s", MinTimeYear, MaxTimeYear, year))
	}
	if m := longYear.FindStringSubmatch(s); m != nil {
		return time.Time{}, yearRule(short(m[1]))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apperr.New(apperr.BadInput, "Time must be an RFC 3339 string like 2026-01-31T12:00:00Z, got "+shortQuote(s))
	}
	if y := t.UTC().Year(); y < MinTimeYear || y > MaxTimeYear {
		return time.Time{}, yearRule(fmt.Sprint(y))
	}
	return t, nil
}
