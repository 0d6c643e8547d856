// Package sockio reads and writes TCP sockets with raw system calls on the
// goroutine's own thread.
//
// Why: Go's net package wraps each read and write in entersyscall /
// exitsyscall. On a small VM a loopback write takes 10–30 µs (the kernel
// delivers the segment to the peer inside the call), long enough for the
// runtime's sysmon to hand the P to another thread, which costs futex
// wake-ups and context switches on every statement. Socket file
// descriptors are non-blocking, so a raw read or write never blocks the
// thread: it returns EAGAIN and the goroutine waits in the netpoller
// exactly as net.Conn would (deadlines included), through
// syscall.RawConn.
//
// A Conn is used by one goroutine at a time for reading and one for
// writing, as net.Conn is; Close and deadlines may come from any
// goroutine.
package sockio
