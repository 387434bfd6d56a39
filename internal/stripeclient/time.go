package stripeclient

import "time"

// Time converts a Stripe timestamp (Unix seconds, 0 when unset) to a UTC
// time, nil when unset.
func Time(sec int64) *time.Time {
	if sec <= 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}
