package stripeclient_test

import (
	"math"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
)

// TestTimeOutsideTheYearsIsUnset: a Stripe timestamp Tollgate cannot
// serve (past 9999, before 2000, past int64 seconds' room for time.Unix)
// reads as unset instead of wrapping to another year, and the last second
// of 9999 is still a time.
func TestTimeOutsideTheYearsIsUnset(t *testing.T) {
	last := time.Date(clock.MaxYear, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, sec := range []int64{0, -1, math.MinInt64, math.MaxInt64, math.MaxInt64 - 62135596800 + 1, last.Unix() + 1, 946684799} {
		if got := stripeclient.Time(sec); got != nil {
			t.Errorf("Time(%d) = %v, want nil", sec, got)
		}
	}
	if got := stripeclient.Time(last.Unix()); got == nil || !got.Equal(last) {
		t.Errorf("Time(%d) = %v, want %v", last.Unix(), got, last)
	}
}
