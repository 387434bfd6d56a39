package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuShare splits the machine's CPU time during a phase between this
// process (Tollgate and its load generator) and everything else: Postgres
// and Redis, which the phase drives, and any unrelated job, which makes the
// figures noisy. Both are fractions of all cores.
type cpuShare struct {
	Own, Others float64
}

// cpuSample is a reading of the kernel's CPU counters, in clock ticks.
type cpuSample struct {
	at         time.Time
	busy, self int64
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go
// supports.
const clockTicks = 100

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), busy: -1, self: -1}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		if len(f) >= 9 {
			var busy int64
			for i, v := range f[1:9] {
				n, _ := strconv.ParseInt(v, 10, 64)
				if i != 3 && i != 4 { // idle and iowait are not work
					busy += n
				}
			}
			s.busy = busy
		}
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// Fields after the parenthesised command name; utime and stime are
		// the 14th and 15th fields overall.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			f := strings.Fields(string(b)[i+1:])
			if len(f) >= 13 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				s.self = u + st
			}
		}
	}
	return s
}

// since is the CPU share from s to now; zero when /proc is unreadable.
func (s cpuSample) since() cpuShare {
	now := sampleCPU()
	if s.busy < 0 || s.self < 0 || now.busy < 0 || now.self < 0 {
		return cpuShare{}
	}
	capacity := now.at.Sub(s.at).Seconds() * clockTicks * float64(runtime.NumCPU())
	if capacity <= 0 {
		return cpuShare{}
	}
	own := float64(now.self - s.self)
	return cpuShare{Own: own / capacity, Others: max(float64(now.busy-s.busy)-own, 0) / capacity}
}
