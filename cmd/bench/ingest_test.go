package main

import "testing"

// A ratio just under a target's line must not print as the line itself
// beside its MISS (0.996 as "1.00×"); others keep two decimals.
func TestARatioThatRoundsOntoATenthShowsWhichSideItIsOn(t *testing.T) {
	for x, want := range map[float64]string{
		0.99597: "0.996×",
		1.0021:  "1.002×",
		0.4996:  "0.4996×",
		1.09:    "1.09×",
		0.7264:  "0.73×",
		1.2:     "1.2000×",
	} {
		if got := ratioText(x); got != want {
			t.Errorf("ratioText(%v) = %q, want %q", x, got, want)
		}
	}
}

func TestOneEventBoundsPredictFromCPUAndTakeOutTheServersOwnCost(t *testing.T) {
	floor := CPUPerOp{Postgres: 150, Load: 30, Busy: 0.9}                     // 180 µs a row, 90% busy
	bare := CPUPerOp{Server: 40, Load: 20, Busy: 0.8}                         // `{ __typename }`
	one := CPUPerOp{Server: 100, Postgres: 50, Redis: 5, Load: 25, Busy: 0.8} // 180 µs an event, 80% busy
	model, bound := oneEventBounds(floor, bare, one, CPUPerOp{})
	near := func(got, want float64) bool { return got > want-1e-9 && got < want+1e-9 }
	// 180 µs against 180 µs, at 80% busy against 90%.
	if !near(model[0], 0.8/0.9) {
		t.Errorf("model = %v, want %v", model[0], 0.8/0.9)
	}
	// The server's 100 µs replaced by the bare endpoint's 40: 120 µs an event.
	if !near(bound[0], 180*0.8/0.9/120) {
		t.Errorf("bound = %v, want %v", bound[0], 180*0.8/0.9/120)
	}
	// A phase with no figures gives no ratio rather than a division by zero.
	if model[1] != 0 || bound[1] != 0 {
		t.Errorf("missing phase: model %v, bound %v, want 0 and 0", model[1], bound[1])
	}
}
