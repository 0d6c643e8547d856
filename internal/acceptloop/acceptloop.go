// Package acceptloop is the accept loop every Switchyard listener runs: a
// listener never dies quietly. Running out of file descriptors, buffers or
// memory is temporary: the loop backs off (5 ms doubling to 1 s), reports
// the failure (at most once a second) and accepts again by itself once the
// resource is back. Any other failure ends the loop with an error, which
// the process treats as fatal.
//
// Serve runs in the caller's goroutine; each connection gets a goroutine
// of its own, counted in the caller's WaitGroup.
package acceptloop

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Serve accepts on l until it is closed (nil) or fails for good (the
// error). onTemporary, when set, is told of each temporary failure and the
// back-off chosen, and whether to log it (at most once a second).
func Serve(l net.Listener, wg *sync.WaitGroup, handle func(net.Conn), onTemporary func(err error, backoff time.Duration, log bool)) error {
	var backoff time.Duration
	var lastLog time.Time
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !Temporary(err) {
				return fmt.Errorf("accept on %s: %w", l.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log := time.Since(lastLog) >= time.Second
			if log {
				lastLog = time.Now()
			}
			if onTemporary != nil {
				onTemporary(err, backoff, log)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(c)
		}()
	}
}

// Temporary: the listener is fine, the process lacks a resource for now
// (file descriptors, buffers, memory) or the client gave up during accept.
func Temporary(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EPROTO, syscall.EPERM, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
