package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ServerErrorCode is the server's error number in err (from either
// driver: go-sql-driver's or go-mysql's), 0 when the server sent none.
func ServerErrorCode(err error) uint16 {
	var de *mysql.MySQLError
	if errors.As(err, &de) {
		return de.Number
	}
	if me, ok := asMyError(err); ok {
		return me.Code
	}
	return 0
}

// Observation is what one server says about itself.
type Observation struct {
	Server   Server
	Err      error
	Flavor   Flavor
	Version  string // @@version
	ReadOnly bool
	ServerID uint32
	GTIDPos  string
	Replica  *ReplicaStatus // nil when not a replica
}

// MonitorDSN builds a go-sql-driver DSN with deadlines on every I/O.
func MonitorDSN(addr string, a Account, timeout time.Duration) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = a.User, a.Password, "tcp", addr
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = timeout, 5*timeout, 5*timeout
	return cfg.FormatDSN()
}

// Observe asks one server for its role-defining state.
func Observe(ctx context.Context, s Server, a Account, timeout time.Duration) Observation {
	o := Observation{Server: s}
	db, err := sql.Open("mysql", MonitorDSN(s.Addr, a, timeout))
	if err != nil {
		o.Err = err
		return o
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 5*timeout)
	defer cancel()
	if err := db.QueryRowContext(qctx, "SELECT @@version, @@read_only, @@server_id").Scan(&o.Version, &o.ReadOnly, &o.ServerID); err != nil {
		o.Err = fmt.Errorf("%s (%s): %w", s.Name, s.Addr, err)
		return o
	}
	o.Flavor = FlavorFromVersion(o.Version)
	if err := db.QueryRowContext(qctx, o.Flavor.GTIDPositionSQL()).Scan(&o.GTIDPos); err != nil {
		o.Err = fmt.Errorf("%s: read GTID position: %w", s.Name, err)
		return o
	}
	rs, ok, err := QueryReplicaStatus(qctx, db, o.Flavor)
	if err != nil {
		o.Err = fmt.Errorf("%s: %w", s.Name, err)
		return o
	}
	if ok && rs.MasterHost != "" {
		o.Replica = &rs
	}
	return o
}

// HandshakeVersion is the version a proxy in front of a server with this
// @@version announces: the server's own, marked as Switchyard's, with
// MariaDB's "5.5.5-" prefix (MariaDB connectors strip it; it makes MySQL
// connectors treat the server as 5.5+).
func HandshakeVersion(version string) string {
	if FlavorFromVersion(version) == MariaDB && !strings.HasPrefix(version, "5.5.5-") {
		version = "5.5.5-" + version
	}
	return version + "-switchyard"
}

// FindMaster picks the master from observations: the one reachable server
// that is writable and replicates from nobody. Anything else is ambiguous
// and reported, never guessed.
func FindMaster(obs []Observation) (string, error) {
	var writable []string
	for _, o := range obs {
		if o.Err == nil && !o.ReadOnly && o.Replica == nil {
			writable = append(writable, o.Server.Name)
		}
	}
	switch len(writable) {
	case 1:
		return writable[0], nil
	case 0:
		var why []string
		for _, o := range obs {
			switch {
			case o.Err != nil:
				why = append(why, fmt.Sprintf("%s unreachable (%v)", o.Server.Name, o.Err))
			case o.ReadOnly:
				why = append(why, o.Server.Name+" is read_only")
			default:
				why = append(why, o.Server.Name+" is a replica")
			}
		}
		return "", fmt.Errorf("no writable master found: %s", strings.Join(why, "; "))
	default:
		return "", fmt.Errorf("ambiguous topology: %s are all writable and replicate from nobody; "+
			"set read_only=1 on all but the real master", strings.Join(writable, ", "))
	}
}

// Discovery is what asking every server at start-up found.
type Discovery struct {
	Master        string
	MasterVersion string // the master's @@version ("" when none)
	Observations  []Observation
	// Deduced: no writable master answered; Master is the unreachable
	// server every reachable replica follows (it is down: the failover
	// engine takes over).
	Deduced bool
}

// Discover asks every server who it is, in parallel, so a restart never
// guesses the master; an ambiguous topology is an error (FindMaster).
func Discover(ctx context.Context, servers []Server, a Account, timeout time.Duration) (Discovery, error) {
	obs := make([]Observation, len(servers))
	done := make(chan struct{})
	for i, s := range servers {
		go func() {
			obs[i] = Observe(ctx, s, a, timeout)
			done <- struct{}{}
		}()
	}
	for range servers {
		<-done
	}
	d := Discovery{Observations: obs}
	master, err := FindMaster(obs)
	if err != nil {
		if m := followedMaster(obs); m != "" {
			master, err, d.Deduced = m, nil, true
		}
	}
	d.Master = master
	for _, o := range obs {
		if o.Server.Name == master {
			d.MasterVersion = o.Version
		}
	}
	return d, err
}

// followedMaster is the server every reachable replica follows when it
// is itself unreachable (a master that died while the proxy was down);
// "" when the replicas disagree, none answers, or it answers.
func followedMaster(obs []Observation) string {
	source := ""
	for _, o := range obs {
		switch {
		case o.Err != nil:
			continue
		case o.Replica == nil || !o.ReadOnly:
			return "" // a server that is no replica: not this case
		}
		addr := fmt.Sprintf("%s:%d", o.Replica.MasterHost, o.Replica.MasterPort)
		if source != "" && addr != source {
			return ""
		}
		source = addr
	}
	for _, o := range obs {
		if o.Server.Addr == source && o.Err != nil {
			return o.Server.Name
		}
	}
	return ""
}
