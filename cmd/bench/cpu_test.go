package main

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatReadsTheNameAndTimesPastParenthesesInTheName(t *testing.T) {
	// utime is the 14th field overall and stime the 15th.
	line := "4242 (postgres: a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 1 0 100 1000 10\n"
	comm, ticks, ok := parseStat(line)
	if !ok || comm != "postgres: a) b (c" || ticks != 1234+567 {
		t.Fatalf("parseStat = %q, %d, %v; want the name with its parentheses and 1801 ticks", comm, ticks, ok)
	}
	for _, bad := range []string{"", "4242 no-name 1 2", "4242 (short) S 1 2"} {
		if _, _, ok := parseStat(bad); ok {
			t.Errorf("parseStat(%q) took a line without its fields", bad)
		}
	}
}

// The load generator's share is this process's own CPU time: spinning must
// show in it (however busy the machine is, which only makes it take longer),
// and the machine's busy time must cover it.
func TestSampledPartiesCountThisProcessAsTheLoadGenerator(t *testing.T) {
	if _, _, ok := procTicks(os.Getpid()); !ok || sampleCPU().busy < 0 {
		t.Skip("/proc is not readable here")
	}
	before := sampleParties(-1)
	var x uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		for i := range 1000000 {
			x += uint64(i) * x
		}
		after := sampleParties(-1)
		load, busy := after.Load-before.Load, after.Busy-before.Busy
		if load >= 10 { // 100 ms of this process's CPU
			// Both are counted in ticks, read at slightly different moments.
			if busy+2 < load {
				t.Fatalf("the machine was busy %d ticks while this process alone used %d", busy, load)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s of spinning counted %d ticks for this process", load)
		}
	}
	runtime.KeepAlive(x)
}

func TestCPUPerOpDividesEachPartysTimeByTheOperations(t *testing.T) {
	c := cpuTally{
		ticks: partyTicks{Server: 100, Postgres: 50, Redis: 10, Load: 20, Busy: 200},
		ops:   1000,
		wall:  time.Second,
	}
	got := c.perOp()
	// 100 ticks are 1 s, over 1,000 operations 1,000 µs each.
	want := CPUPerOp{Server: 1000, Postgres: 500, Redis: 100, Load: 200, Other: 200,
		Busy: 200 / (100 * float64(runtime.NumCPU()))}
	if got != want {
		t.Fatalf("perOp = %+v, want %+v", got, want)
	}
	if (&cpuTally{}).perOp() != (CPUPerOp{}) {
		t.Fatal("an empty tally should read as zero")
	}
}
