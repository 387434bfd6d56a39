package clock

import "time"

// The years every time Tollgate takes or serves falls in (UTC): what a
// client may send, what is read from Stripe, what an invoice cursor may
// hold. A later one cannot be written as RFC 3339, which the GraphQL Time
// scalar serves, and nothing Tollgate bills (nor anything at Stripe) is
// from before 2000.
const (
	MinYear = 2000
	MaxYear = 9999
)

// InYears reports whether a Unix time (seconds) falls in MinYear to
// MaxYear, UTC. It compares seconds: time.Unix of an absurd value, which
// a Stripe payload may carry, overflows Year.
func InYears(sec int64) bool {
	return sec >= minSec && sec <= maxSec
}

var (
	minSec = time.Date(MinYear, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxSec = time.Date(MaxYear+1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 1
)
