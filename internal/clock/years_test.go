package clock_test

import (
	"math"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

func TestInYears(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		sec  int64
		want bool
	}{
		{at: time.Date(clock.MinYear, 1, 1, 0, 0, 0, 0, time.UTC), want: true},
		{at: time.Date(clock.MinYear-1, 12, 31, 23, 59, 59, 0, time.UTC)},
		{at: time.Date(clock.MaxYear, 12, 31, 23, 59, 59, 0, time.UTC), want: true},
		{at: time.Date(clock.MaxYear+1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{sec: 99999999999999},
		{sec: math.MaxInt64},
		{sec: -1},
	} {
		sec := tc.sec
		if !tc.at.IsZero() {
			sec = tc.at.Unix()
		}
		if got := clock.InYears(sec); got != tc.want {
			t.Errorf("InYears(%d) = %v, want %v", sec, got, tc.want)
		}
	}
}
