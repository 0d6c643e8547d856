// Package threads sizes the Go scheduler (GOMAXPROCS) to the proxy's load.
//
// Why: a proxy spends most of a statement waiting on sockets. With one P
// per CPU and the process using less than a core, each socket that becomes
// ready tends to wake an idle thread on another CPU (a futex wake-up, an
// inter-processor interrupt, a spinning thread that finds nothing to do).
// On the 2-core benchmark machine that was 7–14 % more CPU per query than
// the same binary with GOMAXPROCS=1, measured in the same rounds, with no
// throughput gained. So the proxy runs Go code on as few threads as its
// load needs, and adds threads as soon as the load does.
//
// Next is the decision, a pure function of the CPU the process used in the
// last interval. Controller is its one goroutine: every Interval it reads
// the process's CPU time (getrusage: user and system time of all threads),
// decides, and sets GOMAXPROCS through an actuator (runtime.GOMAXPROCS in
// the product, a fake in tests). It owns the thread count while it runs;
// nothing else sets GOMAXPROCS then (the config's threads setting stops it
// first).
package threads
