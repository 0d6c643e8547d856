package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/backend"
)

func TestReady(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(c *backend.Cluster)
		coordinated bool
		want        int
		body        string
	}{
		{"writable master", func(c *backend.Cluster) {}, true, 200, "ready"},
		{"master down", func(c *backend.Cluster) { c.SetHealth("m", backend.Health{Up: false}) }, true, 503, "down"},
		{"master read-only", func(c *backend.Cluster) { c.SetHealth("m", backend.Health{Up: true, ReadOnly: true}) }, true, 503, "read-only"},
		{"no master", func(c *backend.Cluster) { c.SetMaster("") }, true, 503, "no master"},
		{"etcd lost", func(c *backend.Cluster) {}, false, 503, "etcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := backend.NewCluster([]backend.Server{{Name: "m", Addr: "127.0.0.1:1", Weight: 1}}, "m", backend.PoolOptions{MaxOpen: 1}, nil)
			tt.setup(c)
			coordinated := tt.coordinated
			m := New(Sources{Cluster: c, Coordinated: func() bool { return coordinated }})
			ok, why := m.Ready()
			if ok != (tt.want == 200) || (!ok && !strings.Contains(why, tt.body)) {
				t.Fatalf("ready %v %q, want %v containing %q", ok, why, tt.want == 200, tt.body)
			}
		})
	}
}

func TestMetricsExposition(t *testing.T) {
	c := backend.NewCluster([]backend.Server{{Name: "m", Addr: "127.0.0.1:1", Weight: 1}}, "m", backend.PoolOptions{MaxOpen: 1}, nil)
	m := New(Sources{Cluster: c, Sessions: func() int { return 3 }, UsableReplicas: func() int { return 2 },
		Coordinated: func() bool { return false }, Leader: func() bool { return false }, MaxConnections: 64})
	c.SetHealth("m", backend.Health{Up: true})
	m.ObserveStatement("read", false, true, 0)
	m.ObserveStatement("write", true, false, 0)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`switchyard_queries_total{kind="read",route="replica"} 1`,
		`switchyard_query_errors_total{route="master"} 1`,
		`switchyard_client_connections 3`,
		`switchyard_backend_master{backend="m"} 1`,
		`switchyard_topology_epoch 1`,
		`switchyard_replicas_usable 2`,
		`switchyard_pool_max_connections 64`,
		`switchyard_coordination_healthy 0`,
		`switchyard_coordination_leader 0`,
		`switchyard_backend_diverged{backend="m"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
}
