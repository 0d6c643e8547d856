package harness

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Etcd is a real single-member etcd embedded in the test process.
type Etcd struct {
	*embed.Etcd
	URL    string // client URL
	Config *embed.Config
}

// StartEtcd starts one etcd member with its data in dir, on free loopback
// ports.
func StartEtcd(dir string) (*Etcd, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cu, _ := url.Parse("http://" + net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0])))
	pu, _ := url.Parse("http://" + net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[1])))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd did not start within 30s")
	}
	return &Etcd{Etcd: e, URL: cu.String(), Config: cfg}, nil
}

// EtcdFor starts an etcd member for test t, in its temporary directory,
// and stops it when t ends.
func EtcdFor(t testing.TB) *Etcd {
	t.Helper()
	e, err := StartEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// CoordinationConfig is the coordination section for instance id on e.
func (e *Etcd) CoordinationConfig(id, prefix string) string {
	return fmt.Sprintf("coordination:\n  instance_id: %s\n  etcd:\n    endpoints: [%s]\n    prefix: %s\n    session_ttl: 3s\n", id, e.URL, prefix)
}
