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
	Version       string            `json:"version"`
	UptimeSeconds int64             `json:"uptime_seconds"`
	Clusters      []ClusterStatus   `json:"clusters"`
	Sessions      []SessionStatus   `json:"sessions"`
	Counters      map[string]uint64 `json:"counters"`
	Members       []Member          `json:"members,omitempty"`
	// The first cluster's master, epoch, hold and coordination, as the
	// page and scripts read them before clusters existed.
	Master         string `json:"master"`
	Epoch          uint64 `json:"epoch"`
	HoldingWrites  bool   `json:"holding_writes"`
	Coordination   string `json:"coordination"`
	CoordinationOK bool   `json:"coordination_ok"`
}

// ClusterStatus is one cluster.
type ClusterStatus struct {
	Name          string `json:"name"`
	Master        string `json:"master"`
	Epoch         uint64 `json:"epoch"`
	HoldingWrites bool   `json:"holding_writes"`
	// FailoverBlocked says why a dead master is not being replaced (""
	// when nothing blocks a failover); FailoverBlockedKind is its category
	// (disabled, cooldown, unconfirmed, no_candidate, coordination, failed).
	FailoverBlocked     string           `json:"failover_blocked"`
	FailoverBlockedKind string           `json:"failover_blocked_kind"`
	Coordination        string           `json:"coordination"`
	CoordinationOK      bool             `json:"coordination_ok"`
	Backends            []BackendStatus  `json:"backends"`
	Failovers           []FailoverStatus `json:"failovers"`
}

// BackendStatus is one server: a row of SHOW BACKENDS.
type BackendStatus struct {
	Cluster string `json:"cluster"`
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
	// Received is what a replica's IO thread fetched; ApplyBacklog how
	// many transactions it received and has not applied yet (what a
	// failover to it would wait for).
	Received     string `json:"gtid_received"`
	ApplyBacklog uint64 `json:"apply_backlog"`
	PoolOpen     int    `json:"pool_open"`
	PoolIdle     int    `json:"pool_idle"`
	PoolWaiting  int    `json:"pool_waiting"`
	Routed       uint64 `json:"queries_routed"`
	Weight       int    `json:"weight"`
	LastError    string `json:"last_error"`
}

// FailoverStatus is one topology change: a row of SHOW FAILOVERS.
type FailoverStatus struct {
	Cluster    string       `json:"cluster"`
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
	Cluster        string `json:"cluster"`
	DB             string `json:"db"`
	InTransaction  bool   `json:"in_transaction"`
	Backend        string `json:"backend"`
	AgeMS          int64  `json:"age_ms"`
	BackendConns   int    `json:"backend_conns"`
	BackendThreads string `json:"backend_threads"`
	HeldBecause    string `json:"held_because"`
	LastStatement  string `json:"last_statement_digest"`
}

// StatusOf gathers the picture from the sources.
func StatusOf(src Sources) Status {
	st := Status{Version: src.Version(), UptimeSeconds: int64(time.Since(src.Started()).Seconds()),
		Sessions: sessions(src), Counters: src.Counters(), Members: src.Members()}
	for _, c := range src.Clusters() {
		st.Clusters = append(st.Clusters, clusterStatus(src, c))
	}
	if len(st.Clusters) > 0 {
		first := st.Clusters[0]
		st.Master, st.Epoch, st.HoldingWrites = first.Master, first.Epoch, first.HoldingWrites
		st.Coordination, st.CoordinationOK = first.Coordination, first.CoordinationOK
	}
	if st.Counters == nil {
		st.Counters = map[string]uint64{}
	}
	return st
}

func clusterStatus(src Sources, c Cluster) ClusterStatus {
	t := c.Backend.Topology()
	cs := ClusterStatus{Name: c.Name, Master: t.Master, Epoch: t.Epoch, HoldingWrites: t.Holding,
		FailoverBlocked: t.FailoverBlocked, Coordination: c.Coordination, CoordinationOK: c.CoordinationOK,
		Backends: backends(c, t), Failovers: failovers(src, c)}
	if c.Engine != nil && t.FailoverBlocked != "" {
		cs.FailoverBlockedKind = c.Engine.Blocked().Kind
	}
	return cs
}

func backends(c Cluster, t *backend.Topology) []BackendStatus {
	out := make([]BackendStatus, 0, len(t.Servers))
	for i := range t.Servers {
		st := &t.Servers[i]
		b := BackendStatus{Cluster: c.Name, Name: st.Name, Address: st.Addr, Role: roleOf(t, st), State: stateOf(t, st),
			Up: st.Up, ReadOnly: st.ReadOnly, Offline: st.Offline, Diverged: st.Diverged,
			Weight: st.Weight, Routed: c.Backend.Counters.Routed(st.Name), GTID: st.Current.String(), LastError: st.Err}
		if l := st.DisplayLag(); l >= 0 {
			b.LagSeconds = &l
		}
		ps := c.Backend.Pools.Stats(st.Name)
		b.PoolOpen, b.PoolIdle, b.PoolWaiting = ps.Open, ps.Idle, ps.Waiting
		if r := st.Replica; r != nil {
			b.GTID = st.Applied.String()
			b.Received = st.Received.String()
			b.ApplyBacklog = st.ApplyBacklog()
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
	if st.Name == t.Master && t.FailoverBlocked != "" {
		state += ",failover-blocked"
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

func failovers(src Sources, c Cluster) []FailoverStatus {
	if c.Engine == nil {
		return nil
	}
	var out []FailoverStatus
	for _, r := range c.Engine.History() {
		f := FailoverStatus{Cluster: c.Name, Started: r.Started.UTC(), Kind: r.Kind, OldMaster: r.OldMaster, NewMaster: r.NewMaster,
			DurationMS: ms(r.Duration), Epoch: r.Epoch, Succeeded: r.Error == "", Drained: r.Drained,
			Reason: r.Reason, Positions: r.Positions, Error: r.Error}
		for _, st := range r.Steps {
			f.Steps = append(f.Steps, StepStatus{Name: st.Name, DurationMS: ms(st.Duration), Error: st.Error})
		}
		if f.Succeeded {
			f.Replayed, f.Aborted = src.TxOutcomes(c.Name, r.Epoch)
		}
		out = append(out, f)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sessions(src Sources) []SessionStatus {
	list := src.Sessions()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	out := make([]SessionStatus, 0, len(list))
	for _, x := range list {
		out = append(out, SessionStatus{ID: x.ID, User: x.User, Client: x.Client, Cluster: x.Cluster, DB: x.DB, InTransaction: x.InTransaction,
			Backend: x.Backend, AgeMS: x.Age.Milliseconds(), BackendConns: x.BackendConns, BackendThreads: x.BackendThreads,
			HeldBecause: x.HeldBecause, LastStatement: x.LastStatement})
	}
	return out
}
