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
