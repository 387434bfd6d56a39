package usage

import (
	"fmt"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Period is a UTC calendar month: Start is included, End is not.
type Period struct {
	Start, End time.Time
}

// allTime is the period key of meters that never reset: one row holds their
// running total forever.
var allTime = time.Unix(0, 0).UTC()

// periodStart is the rollup period an event at t counts in.
func periodStart(reset plans.Reset, t time.Time) time.Time {
	if reset == plans.Never {
		return allTime
	}
	return clock.MonthStart(t)
}

// dayOf is the UTC midnight starting t's day.
func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// earliest bounds the past a report may ask about. Before it, Go's zero
// time (year 1) would reach the API as a null in a non-null field, and no
// usage can be that old.
var earliest = time.Date(clock.MinYear, time.January, 1, 0, 0, 0, 0, time.UTC)

// parsePeriod reads "YYYY-MM"; "" is the month containing now. A month that
// has not begun has no usage to report, so it is refused rather than
// answered with zeros that look like data.
func parsePeriod(s string, now time.Time) (Period, error) {
	start := clock.MonthStart(now)
	if s != "" {
		t, err := time.Parse("2006-01", s)
		if err != nil {
			return Period{}, badInput("period", fmt.Sprintf("period %.32q must be a month written YYYY-MM, e.g. %s", s, now.Format("2006-01")))
		}
		if t.After(start) {
			return Period{}, badInput("period", fmt.Sprintf("period %s has not started yet", s))
		}
		if t.Before(earliest) {
			return Period{}, badInput("period", fmt.Sprintf("period %s is before %s; Tollgate has no usage that old", s, earliest.Format("2006-01")))
		}
		start = t
	}
	return Period{Start: start, End: clock.MonthEnd(start)}, nil
}

// badInput is a client error about one argument of a query.
func badInput(field, msg string) error {
	return apperr.ArgError(field, msg)
}
