package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/backend"
)

// fakeSources serves fixed values around real topologies.
type fakeSources struct {
	clusters    []Cluster
	coordinated bool
	healthy     bool
	serving     bool
}

func (f *fakeSources) Clusters() []Cluster         { return f.clusters }
func (f *fakeSources) Counters() map[string]uint64 { return map[string]uint64{"accept_errors": 2} }
func (f *fakeSources) Sessions() int               { return 3 }
func (f *fakeSources) Coordination() (bool, bool)  { return f.coordinated, f.healthy }
func (f *fakeSources) Serving() (bool, string) {
	if f.serving {
		return true, ""
	}
	return false, "the client listener stopped: accept failed"
}

func oneServer(name, master string) *backend.Cluster {
	return backend.NewCluster(name, []backend.Server{{Name: master, Addr: "127.0.0.1:1", Weight: 1}}, master, backend.PoolOptions{MaxOpen: 64}, nil)
}

func TestReady(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(c *backend.Cluster, f *fakeSources)
		ready  bool
		reason string
	}{
		{"writable master", func(c *backend.Cluster, f *fakeSources) {}, true, ""},
		{"master down", func(c *backend.Cluster, f *fakeSources) { c.Topo.SetHealth("m", backend.Health{Up: false}) }, false, "cluster c2: master m is down"},
		{"master read-only", func(c *backend.Cluster, f *fakeSources) {
			c.Topo.SetHealth("m", backend.Health{Up: true, ReadOnly: true})
		}, false, "read-only"},
		{"no master", func(c *backend.Cluster, f *fakeSources) { c.Topo.SetMaster("") }, false, "no master"},
		{"etcd lost", func(c *backend.Cluster, f *fakeSources) { f.coordinated, f.healthy = true, false }, false, "etcd"},
		{"listener stopped", func(c *backend.Cluster, f *fakeSources) { f.serving = false }, false, "listener stopped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c1, c2 := oneServer("c1", "p"), oneServer("c2", "m")
			f := &fakeSources{clusters: []Cluster{{Name: "c1", Backend: c1}, {Name: "c2", Backend: c2}}, serving: true}
			tt.setup(c2, f)
			ok, why := New(f).Ready()
			if ok != tt.ready || (!ok && !strings.Contains(why, tt.reason)) {
				t.Fatalf("ready %v %q, want %v containing %q", ok, why, tt.ready, tt.reason)
			}
		})
	}
}

func TestMetricsExposition(t *testing.T) {
	c1, c2 := oneServer("c1", "m"), oneServer("c2", "n")
	f := &fakeSources{coordinated: true, clusters: []Cluster{
		{Name: "c1", Backend: c1, UsableReplicas: 2, Succeeded: 1, Leader: true},
		{Name: "c2", Backend: c2, BlockedKind: "cooldown"},
	}}
	m := New(f)
	c1.Topo.SetHealth("m", backend.Health{Up: true})
	m.ObserveStatement("c1", "read", false, true, 0)
	m.ObserveStatement("c2", "write", true, false, 0)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`switchyard_queries_total{cluster="c1",kind="read",route="replica"} 1`,
		`switchyard_query_errors_total{cluster="c2",route="master"} 1`,
		`switchyard_client_connections 3`,
		`switchyard_backend_master{backend="m",cluster="c1"} 1`,
		`switchyard_topology_epoch{cluster="c2"} 1`,
		`switchyard_replicas_usable{cluster="c1"} 2`,
		`switchyard_pool_max_connections{cluster="c1"} 64`,
		`switchyard_coordination_healthy 0`,
		`switchyard_coordination_leader{cluster="c1"} 1`,
		`switchyard_coordination_leader{cluster="c2"} 0`,
		`switchyard_backend_diverged{backend="n",cluster="c2"} 0`,
		`switchyard_failovers_total{cluster="c1",outcome="succeeded"} 1`,
		`switchyard_failover_blocked{cluster="c2",reason="cooldown"} 1`,
		`switchyard_events_total{event="accept_errors"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
	standalone := New(&fakeSources{clusters: []Cluster{{Name: "c1", Backend: c1, Leader: true}}})
	rec = httptest.NewRecorder()
	standalone.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{`switchyard_coordination_healthy 1`, `switchyard_coordination_leader{cluster="c1"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("standalone: missing %s", want)
		}
	}
	if !strings.Contains(body, `switchyard_failover_blocked{cluster="c1",reason=""} 0`) {
		t.Error("a cluster whose failover is not blocked lacks its 0 series")
	}
}
