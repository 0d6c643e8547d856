package failover

import (
	"time"

	"go.uber.org/zap"
)

// Step is one timed stage of a failover or switchover.
type Step struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// Record is one failover or switchover, kept in history and persisted.
type Record struct {
	Kind      string        `json:"kind"` // failover, switchover
	Started   time.Time     `json:"started"`
	Reason    string        `json:"reason"`
	OldMaster string        `json:"old_master"`
	NewMaster string        `json:"new_master,omitempty"`
	Positions string        `json:"positions,omitempty"` // GTID positions seen
	Steps     []Step        `json:"steps"`
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
	Epoch     uint64        `json:"epoch,omitempty"`
	// Drained counts the transactions that finished during a
	// switchover's drain; LeftOpen those still open after it (their
	// sessions replay them on the new master or abort them).
	Drained  int `json:"drained,omitempty"`
	LeftOpen int `json:"left_open,omitempty"`
}

// recorder times the steps of one record.
type recorder struct {
	rec   *Record
	start time.Time
}

func newRecorder(kind, reason, old string) *recorder {
	now := time.Now()
	return &recorder{rec: &Record{Kind: kind, Started: now, Reason: reason, OldMaster: old}, start: now}
}

// step runs f as the named step and records its duration and error.
func (r *recorder) step(name string, f func() error) error {
	t := time.Now()
	err := f()
	r.note(name, time.Since(t), err)
	return err
}

func (r *recorder) note(name string, d time.Duration, err error) {
	s := Step{Name: name, Duration: d}
	if err != nil {
		s.Error = err.Error()
	}
	r.rec.Steps = append(r.rec.Steps, s)
}

// finish closes a record: into the history, the state file and the log.
func (e *Engine) finish(r *recorder, err error) {
	r.rec.Duration = time.Since(r.start)
	r.rec.Epoch = e.cluster.Topology().Epoch
	if err != nil {
		r.rec.Error = err.Error()
	}
	e.histMu.Lock()
	e.history = append(e.history, *r.rec)
	if len(e.history) > maxHistory {
		e.history = e.history[len(e.history)-maxHistory:]
	}
	e.histMu.Unlock()
	e.saveState()
	fields := []zap.Field{zap.String("kind", r.rec.Kind), zap.String("old_master", r.rec.OldMaster),
		zap.String("new_master", r.rec.NewMaster), zap.Duration("duration", r.rec.Duration), zap.String("reason", r.rec.Reason)}
	for _, s := range r.rec.Steps {
		fields = append(fields, zap.Duration("step_"+s.Name, s.Duration))
	}
	if err != nil {
		e.log.Error(r.rec.Kind+" aborted", append(fields, zap.Error(err))...)
	} else {
		e.log.Warn(r.rec.Kind+" done", fields...)
	}
}

// History returns the recorded failovers and switchovers, oldest first.
func (e *Engine) History() []Record {
	e.histMu.Lock()
	defer e.histMu.Unlock()
	return append([]Record(nil), e.history...)
}

// loadState continues the epoch sequence and the history from the state
// file; the master itself was discovered from the servers, never taken
// from the file.
func (e *Engine) loadState() {
	if e.cfg().State == nil {
		return
	}
	p, ok := e.cfg().State.load(e.cluster.Name)
	if !ok {
		return
	}
	e.history = p.History
	topo := e.cluster.Topology()
	if p.Epoch >= topo.Epoch {
		e.cluster.Topo.SetEpoch(p.Epoch + 1)
	}
	if p.Master != "" && p.Master != topo.Master {
		e.log.Warn("master differs from the last one recorded", zap.String("recorded", p.Master), zap.String("discovered", topo.Master))
	}
}

// saveState writes the cluster's entry of the state file; a failure is
// logged loudly (the next change tries again).
func (e *Engine) saveState() {
	if e.cfg().State == nil {
		return
	}
	t := e.cluster.Topology()
	p := persisted{Epoch: t.Epoch, Master: t.Master, History: e.History()}
	if err := e.cfg().State.save(e.cluster.Name, p); err != nil {
		e.log.Error("cannot persist topology state", zap.String("file", e.cfg().State.Path()), zap.Error(err))
	}
}
