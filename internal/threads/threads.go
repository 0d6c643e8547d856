package threads

import (
	"context"
	"runtime"
	"syscall"
	"time"
)

const (
	// Interval is how often the controller looks at the CPU used.
	Interval = 250 * time.Millisecond
	// growAt: the threads are doubled once the process uses this share of
	// them (a P busy 60 % of the time already makes statements queue).
	growAt = 0.6
	// shrinkAt and quietIntervals: one thread is taken back once the load
	// would fit one thread fewer at this share, for this many intervals in
	// a row (4 s): a short lull does not make the next burst wait.
	shrinkAt       = 0.5
	quietIntervals = 16
)

// Next returns the thread count for the next interval, from the current
// count cur (1 ≤ cur ≤ max), the CPU cores the process used during the
// last interval, and how many intervals in a row had been quiet before it;
// quietNow is that count after this interval.
func Next(cur, max int, used float64, quiet int) (n, quietNow int) {
	switch {
	case used >= growAt*float64(cur) && cur < max:
		return min(2*cur, max), 0
	case cur > 1 && used < shrinkAt*float64(cur-1):
		if quiet+1 >= quietIntervals {
			return cur - 1, 0
		}
		return cur, quiet + 1
	default:
		return cur, 0
	}
}

// Controller adapts GOMAXPROCS between 1 and Max.
type Controller struct {
	Max int
	// The actuator and the readings, replaced by fakes in tests: set
	// changes the thread count (runtime.GOMAXPROCS), cpu returns the
	// process's CPU time so far (ProcessCPU), tick and now are the
	// Interval ticker and the clock.
	set  func(n int)
	cpu  func() time.Duration
	tick <-chan time.Time
	now  func() time.Time
}

// Run adapts the thread count until ctx ends, starting from one thread.
// The caller sets the count it wants after Run returns.
func (c *Controller) Run(ctx context.Context) {
	set, cpu, tick, now := c.set, c.cpu, c.tick, c.now
	if set == nil {
		set = func(n int) { runtime.GOMAXPROCS(n) }
	}
	if cpu == nil {
		cpu = ProcessCPU
	}
	if now == nil {
		now = time.Now
	}
	if tick == nil {
		t := time.NewTicker(Interval)
		defer t.Stop()
		tick = t.C
	}
	m := meter{max: c.Max, cur: 1, cpu: cpu(), at: now()}
	set(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if n, changed := m.observe(cpu(), now()); changed {
				set(n)
			}
		}
	}
}

// meter turns readings of the process's CPU time into a thread count.
type meter struct {
	max, cur, quiet int
	cpu             time.Duration // at the last reading
	at              time.Time
}

// observe takes the CPU time used so far, read at at, and returns the
// thread count for the next interval and whether it changed.
func (m *meter) observe(cpu time.Duration, at time.Time) (n int, changed bool) {
	elapsed := at.Sub(m.at)
	if elapsed <= 0 {
		return m.cur, false
	}
	used := float64(cpu-m.cpu) / float64(elapsed)
	m.cpu, m.at = cpu, at
	prev := m.cur
	m.cur, m.quiet = Next(m.cur, m.max, used, m.quiet)
	return m.cur, m.cur != prev
}

// ProcessCPU is the user and system time of every thread of the process.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
