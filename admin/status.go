package admin

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Status is the whole picture at one moment: what SHOW BACKENDS, SHOW
// FAILOVERS, SHOW SESSIONS and SHOW STATUS print, as values. The SQL
// commands render it as tables; the HTTP status page draws it.
type Status struct {
	Version        string            `json:"version"`
	UptimeSeconds  int64             `json:"uptime_seconds"`
	Master         string            `json:"master"`
	Epoch          uint64            `json:"epoch"`
	HoldingWrites  bool              `json:"holding_writes"`
	Coordination   string            `json:"coordination"`
	CoordinationOK bool              `json:"coordination_ok"`
	Backends       []BackendStatus   `json:"backends"`
	Failovers      []FailoverStatus  `json:"failovers"`
	Sessions       []SessionStatus   `json:"sessions"`
	Counters       map[string]uint64 `json:"counters"`
	Members        []Member          `json:"members,omitempty"`
}

// BackendStatus is one server: a row of SHOW BACKENDS.
type BackendStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Role: master, replica, diverged, offline, down or standalone.
	Role string `json:"role"`
	// State: up or down, then offline, holding-writes,
	// unreachable-from-proxy when they apply (comma-separated).
	State    string `json:"state"`
	Up       bool   `json:"up"`
	ReadOnly bool   `json:"read_only"`
	Offline  bool   `json:"offline"`
	Diverged bool   `json:"diverged"`
	// LagSeconds is nil when unknown or not a replica.
	LagSeconds *int64 `json:"lag_seconds"`
	// Source names the backend this one replicates from ("" when none or
	// not one of ours); Replication is "io=Yes sql=Yes".
	Source      string `json:"source"`
	Replication string `json:"replication"`
	GTID        string `json:"gtid_position"`
	PoolOpen    int    `json:"pool_open"`
	PoolIdle    int    `json:"pool_idle"`
	PoolWaiting int    `json:"pool_waiting"`
	Routed      uint64 `json:"queries_routed"`
	Weight      int    `json:"weight"`
	LastError   string `json:"last_error"`
}

// FailoverStatus is one topology change: a row of SHOW FAILOVERS.
type FailoverStatus struct {
	Started    time.Time    `json:"started"`
	Kind       string       `json:"kind"`
	OldMaster  string       `json:"old_master"`
	NewMaster  string       `json:"new_master"`
	DurationMS float64      `json:"duration_ms"`
	Epoch      uint64       `json:"epoch"`
	Succeeded  bool         `json:"succeeded"`
	Drained    int          `json:"transactions_drained"`
	Replayed   int          `json:"transactions_replayed"`
	Aborted    int          `json:"transactions_aborted"`
	Reason     string       `json:"reason"`
	Positions  string       `json:"gtid_positions"`
	Steps      []StepStatus `json:"steps"`
	Error      string       `json:"error"`
}

// StepStatus is one step of a topology change.
type StepStatus struct {
	Name       string  `json:"name"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// SessionStatus is one client session: a row of SHOW SESSIONS.
type SessionStatus struct {
	ID             uint32 `json:"id"`
	User           string `json:"user"`
	Client         string `json:"client"`
	DB             string `json:"db"`
	InTransaction  bool   `json:"in_transaction"`
	Backend        string `json:"backend"`
	AgeMS          int64  `json:"age_ms"`
	BackendConns   int    `json:"backend_conns"`
	BackendThreads string `json:"backend_threads"`
	HeldBecause    string `json:"held_because"`
	LastStatement  string `json:"last_statement_digest"`
}

// Status gathers the picture from the sources.
func (src Sources) Status() Status {
	t := src.Cluster.Topology()
	st := Status{Version: src.Version, UptimeSeconds: int64(time.Since(src.Started).Seconds()),
		Master: t.Master, Epoch: t.Epoch, HoldingWrites: t.Holding, CoordinationOK: true,
		Backends: src.backends(t), Failovers: src.failovers(), Sessions: src.sessions(), Counters: map[string]uint64{}}
	if src.Coordination != nil {
		st.Coordination, st.CoordinationOK = src.Coordination()
	}
	if src.Counters != nil {
		st.Counters = src.Counters()
	}
	if src.Members != nil {
		st.Members = src.Members()
	}
	return st
}

func (src Sources) backends(t *backend.Topology) []BackendStatus {
	out := make([]BackendStatus, 0, len(t.Servers))
	for i := range t.Servers {
		st := &t.Servers[i]
		b := BackendStatus{Name: st.Name, Address: st.Addr, Role: roleOf(t, st), State: stateOf(t, st),
			Up: st.Up, ReadOnly: st.ReadOnly, Offline: st.Offline, Diverged: st.Diverged,
			Weight: st.Weight, Routed: src.Cluster.Routed(st.Name), GTID: st.Current.String(), LastError: st.Err}
		if l := st.DisplayLag(); l >= 0 {
			b.LagSeconds = &l
		}
		for _, p := range src.Cluster.PoolsOf(st.Name) {
			ps := p.Stats()
			b.PoolOpen, b.PoolIdle, b.PoolWaiting = b.PoolOpen+ps.Open, b.PoolIdle+ps.Idle, b.PoolWaiting+ps.Waiting
		}
		if r := st.Replica; r != nil {
			b.GTID = st.Applied.String()
			b.Source = sourceOf(t, r)
			io := r.IOState // Yes, No or Connecting
			if io == "" {
				io = yesNo(r.IORunning)
			}
			b.Replication = fmt.Sprintf("io=%s sql=%s", io, yesNo(r.SQLRunning))
			if r.LastIOError != "" || r.LastSQLError != "" {
				b.LastError = strings.TrimSpace(r.LastIOError + " " + r.LastSQLError)
			}
		}
		if st.Note != "" {
			b.LastError = strings.TrimSpace(st.Note + " " + b.LastError)
		}
		out = append(out, b)
	}
	return out
}

func roleOf(t *backend.Topology, st *backend.ServerState) string {
	switch {
	case st.Name == t.Master:
		return "master"
	case st.Diverged:
		return "diverged"
	case st.Offline:
		return "offline"
	case !st.Up:
		return "down"
	case st.Replica == nil:
		return "standalone"
	}
	return "replica"
}

func stateOf(t *backend.Topology, st *backend.ServerState) string {
	state := "up"
	if !st.Up {
		state = "down"
	}
	if st.Offline {
		state += ",offline"
	}
	if st.Name == t.Master && t.Holding {
		state += ",holding-writes"
	}
	if st.Name == t.Master && t.MasterUnreachable {
		state += ",unreachable-from-proxy"
	}
	return state
}

// sourceOf names the backend a replica replicates from: by the server id
// its IO thread saw, else by address.
func sourceOf(t *backend.Topology, r *backend.ReplicaStatus) string {
	for _, o := range t.Servers {
		if r.MasterServerID != 0 && o.ServerID == r.MasterServerID {
			return o.Name
		}
	}
	addr := fmt.Sprintf("%s:%d", r.MasterHost, r.MasterPort)
	for _, o := range t.Servers {
		if o.Addr == addr {
			return o.Name
		}
	}
	return ""
}

func (src Sources) failovers() []FailoverStatus {
	if src.Engine == nil {
		return nil
	}
	var out []FailoverStatus
	for _, r := range src.Engine.History() {
		f := FailoverStatus{Started: r.Started.UTC(), Kind: r.Kind, OldMaster: r.OldMaster, NewMaster: r.NewMaster,
			DurationMS: ms(r.Duration), Epoch: r.Epoch, Succeeded: r.Error == "", Drained: r.Drained,
			Reason: r.Reason, Positions: r.Positions, Error: r.Error}
		for _, st := range r.Steps {
			f.Steps = append(f.Steps, StepStatus{Name: st.Name, DurationMS: ms(st.Duration), Error: st.Error})
		}
		if src.TxOutcomes != nil && f.Succeeded {
			f.Replayed, f.Aborted = src.TxOutcomes(r.Epoch)
		}
		out = append(out, f)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (src Sources) sessions() []SessionStatus {
	if src.Sessions == nil {
		return nil
	}
	list := src.Sessions()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	out := make([]SessionStatus, 0, len(list))
	for _, x := range list {
		out = append(out, SessionStatus{ID: x.ID, User: x.User, Client: x.Client, DB: x.DB, InTransaction: x.InTransaction,
			Backend: x.Backend, AgeMS: x.Age.Milliseconds(), BackendConns: x.BackendConns, BackendThreads: x.BackendThreads,
			HeldBecause: x.HeldBecause, LastStatement: x.LastStatement})
	}
	return out
}
