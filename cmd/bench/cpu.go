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
	if _, ticks, ok := procTicks(os.Getpid()); ok {
		s.self = ticks
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

// partyTicks is the CPU time, in clock ticks, of each party to the ingest
// section's load: Tollgate's server process, Postgres's processes, Redis,
// this process (the load generator, and the floors' clients), and the
// whole machine (busy).
type partyTicks struct {
	Server, Postgres, Redis, Load, Busy int64
}

func (a partyTicks) add(b partyTicks, sign int64) partyTicks {
	return partyTicks{a.Server + sign*b.Server, a.Postgres + sign*b.Postgres, a.Redis + sign*b.Redis,
		a.Load + sign*b.Load, a.Busy + sign*b.Busy}
}

// sampleParties reads every process's CPU counters from /proc: the server by
// its pid, Postgres and Redis by their command names. A process that exits
// between two samples takes its time with it (the phases keep their
// connections open, so their Postgres backends live through them).
func sampleParties(serverPID int) partyTicks {
	t := partyTicks{Busy: sampleCPU().busy}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ticks, ok := procTicks(pid)
		switch {
		case !ok:
		case pid == serverPID:
			t.Server += ticks
		case pid == self:
			t.Load += ticks
		case comm == "postgres":
			t.Postgres += ticks
		case comm == "redis-server":
			t.Redis += ticks
		}
	}
	return t
}

// procTicks is a process's command name and its user and system time.
func procTicks(pid int) (string, int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	return parseStat(string(b))
}

// parseStat reads the command name and the user and system time (the 14th
// and 15th fields) from a /proc/<pid>/stat line. The name is in parentheses
// and may itself hold spaces and parentheses, so the fields are counted from
// the last ')'.
func parseStat(s string) (string, int64, bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return s[open+1 : end], u + st, true
}

// CPUPerOp is where a phase's CPU went, per completed operation (an event
// or a row), in microseconds, by party; Other is the rest of the machine's
// busy time (the kernel's threads, anything unrelated). Busy is the
// machine's busy share of all its cores during the phase.
type CPUPerOp struct {
	Server   float64 `json:"serverMicros"`
	Postgres float64 `json:"postgresMicros"`
	Redis    float64 `json:"redisMicros"`
	Load     float64 `json:"loadGeneratorMicros"`
	Other    float64 `json:"otherMicros"`
	Busy     float64 `json:"machineBusy"`
}

// cpuTally adds up the parties' CPU time over the turns of a phase.
type cpuTally struct {
	serverPID int
	ticks     partyTicks
	ops       int64
	wall      time.Duration
}

// around wraps a phase's turn with samples of the parties' CPU time.
func (c *cpuTally) around(phase func(rec *recorder, d time.Duration)) func(rec *recorder, d time.Duration) {
	return func(rec *recorder, d time.Duration) {
		before, ops, start := sampleParties(c.serverPID), rec.ok.Load(), time.Now()
		phase(rec, d)
		after := sampleParties(c.serverPID)
		c.wall += time.Since(start)
		c.ops += rec.ok.Load() - ops
		c.ticks = c.ticks.add(after, 1).add(before, -1)
	}
}

// perOp is the tally per operation; zero when /proc was unreadable or
// nothing completed.
func (c *cpuTally) perOp() CPUPerOp {
	if c.ops <= 0 || c.wall <= 0 || c.ticks.Busy <= 0 {
		return CPUPerOp{}
	}
	us := func(ticks int64) float64 { return float64(ticks) * 1e6 / clockTicks / float64(c.ops) }
	t := c.ticks
	return CPUPerOp{
		Server: us(t.Server), Postgres: us(t.Postgres), Redis: us(t.Redis), Load: us(t.Load),
		Other: us(max(t.Busy-t.Server-t.Postgres-t.Redis-t.Load, 0)),
		Busy:  float64(t.Busy) / (c.wall.Seconds() * clockTicks * float64(runtime.NumCPU())),
	}
}
