package main

import (
	"context"
	"os"
	"runtime"
	"strconv"

	"github.com/switchyard/switchyard/internal/threads"
)

// threadCount applies the config's threads key: a fixed GOMAXPROCS, or
// (0) as many as the load needs, up to Go's default, sized by a
// threads.Controller. A GOMAXPROCS environment variable is the
// operator's choice and is kept when the key is 0.
type threadCount struct {
	setting int
	cancel  context.CancelFunc
	done    chan struct{}
}

func newThreadCount(setting int) *threadCount {
	t := &threadCount{setting: -1}
	t.apply(setting)
	return t
}

// apply switches to setting; the same setting again changes nothing.
func (t *threadCount) apply(setting int) {
	if setting == t.setting {
		return
	}
	t.stop()
	t.setting = setting
	if setting > 0 {
		runtime.GOMAXPROCS(setting)
		return
	}
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.done = cancel, make(chan struct{})
	c := &threads.Controller{Max: runtime.GOMAXPROCS(0)}
	go func() {
		defer close(t.done)
		c.Run(ctx)
	}()
}

// stop ends the controller, if one runs, and waits for it.
func (t *threadCount) stop() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
	t.cancel, t.done = nil, nil
}
