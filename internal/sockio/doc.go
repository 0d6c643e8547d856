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
// Requests whose reply is read next (a command to a server) can skip the
// read that would only find nothing: WriteBeforeRead leaves the write to
// the next Read, which does it inside syscall.RawConn.Read's callback and
// then waits for readiness before its first read. Go's netpoller forgets a
// readiness seen before a RawConn.Read begins, so skipping a first read
// is only safe for data that cannot have arrived before: a reply to a
// request written after the wait was armed. A client's next command can
// (clients pipeline), so reads from clients still try first.
//
// A Conn is used by one goroutine at a time for reading and one for
// writing, as net.Conn is; Close and deadlines may come from any
// goroutine. A request queued by WriteBeforeRead belongs to the reading
// goroutine: it is written by its next Read (or Write, if that comes
// first).
package sockio
