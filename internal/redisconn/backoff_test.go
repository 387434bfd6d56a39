package redisconn_test

import (
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

func TestAFailureSkipsRedisForASecond(t *testing.T) {
	var b redisconn.Backoff
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if !b.Available(t0) {
		t.Fatal("a new backoff skips Redis")
	}
	if !b.Fail(t0) {
		t.Fatal("the first failure did not begin an outage")
	}
	if b.Fail(t0.Add(time.Millisecond)) {
		t.Fatal("a second failure within the interval began another outage; it would be logged twice")
	}
	if b.Available(t0.Add(redisconn.BackoffInterval)) {
		t.Fatal("Redis tried again before a second passed since the last failure")
	}
	if !b.Available(t0.Add(time.Millisecond + redisconn.BackoffInterval)) {
		t.Fatal("Redis still skipped a second after the last failure")
	}
	b.Fail(t0.Add(time.Hour))
	b.Recovered()
	if !b.Available(t0.Add(time.Hour)) {
		t.Fatal("Redis skipped after a call succeeded")
	}
	if b.Faults() != 3 {
		t.Fatalf("%d faults counted, want 3", b.Faults())
	}
}
