package model

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
)

// MarshalTime writes RFC 3339 with nanoseconds, as gqlgen's Time does.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// longYear is the start of a timestamp whose year has five digits or more,
// which RFC 3339 cannot write; it is reported as the year it is.
var longYear = regexp.MustCompile(`^[+-]?(\d{5,})-\d\d-\d\dT`)

// UnmarshalTime reads an RFC 3339 timestamp from clock.MinYear to
// clock.MaxYear, the years every time Tollgate takes falls in.
// A value it refuses is BAD_USER_INPUT with a message that names the rule
// broken: gqlgen's own error is a plain error the error presenter must
// treat as INTERNAL (gqlgen issue 772).
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.New(apperr.BadInput, "expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z, got "+Describe(v))
	}
	yearRule := func(year string) error {
		return apperr.New(apperr.BadInput, fmt.Sprintf("a timestamp's year must be from %d to %d (UTC), got %s", clock.MinYear, clock.MaxYear, year))
	}
	if m := longYear.FindStringSubmatch(s); m != nil {
		return time.Time{}, yearRule(short(m[1]))
	}
	// RFC 3339 allows "t" and "z" in lower case; Go's parser does not.
	// strings.ToUpper returns s itself when nothing is lower case.
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil || !offsetInRange(s) {
		return time.Time{}, apperr.New(apperr.BadInput, "expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z, got "+shortQuote(s))
	}
	if y := t.UTC().Year(); y < clock.MinYear || y > clock.MaxYear {
		return time.Time{}, yearRule(fmt.Sprint(y))
	}
	return t, nil
}

// offsetInRange reports whether a timestamp Go parsed has an offset RFC
// 3339 can write: hours 00 to 23 and minutes 00 to 59. Go takes +24:00 and
// +23:60.
func offsetInRange(s string) bool {
	if len(s) < 6 || (s[len(s)-6] != '+' && s[len(s)-6] != '-') {
		return true // Z, or z
	}
	off := s[len(s)-5:] // hh:mm, digits: Go parsed it
	return off[:2] <= "23" && off[3:] <= "59"
}
