package stripeclient

import (
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// Time converts a Stripe timestamp (Unix seconds, 0 when unset) to a UTC
// time, nil when unset or outside clock.MinYear to clock.MaxYear: objects
// stripein judged never hold such a time, but a preview Tollgate only
// shows (the upcoming invoice) is not judged, and time.Unix of an absurd
// value wraps to some other year rather than failing.
func Time(sec int64) *time.Time {
	if !clock.InYears(sec) {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}
