package proxy

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// Every error a client sees is a *mysql.MyError: either the server's own
// (relayed byte for byte, never rebuilt) or one of these, built with the
// MariaDB code a client library already knows how to handle.

// ER_CONNECTION_KILLED (MariaDB 1927, SQLSTATE 70100): a backend went away
// under a running statement. The session stays usable.
const erConnectionKilled = 1927

func errBackendLost(name string, err error) *mysql.MyError {
	return &mysql.MyError{Code: erConnectionKilled, State: "70100",
		Message: fmt.Sprintf("Connection to backend %s was lost: %v", name, shortErr(err))}
}

// forFlavor is an error the proxy makes, as a client of this server
// family knows it: the codes only MariaDB has become MySQL's nearest in
// front of MySQL (a lost backend connection ER_NET_READ_ERROR, a
// statement over its time ER_QUERY_TIMEOUT). SQLSTATE and text stay.
func forFlavor(me *mysql.MyError, f backend.Flavor) *mysql.MyError {
	if f != backend.MySQL {
		return me
	}
	switch me.Code {
	case erConnectionKilled:
		return &mysql.MyError{Code: mysql.ER_NET_READ_ERROR, State: me.State, Message: me.Message}
	case erStatementTimeout:
		return &mysql.MyError{Code: erMySQLQueryTimeout, State: "HY000", Message: me.Message}
	}
	return me
}

// erMySQLQueryTimeout is MySQL's ER_QUERY_TIMEOUT (max_execution_time).
const erMySQLQueryTimeout = 3024

// errConnectionKilled ends a killed session with the server's words.
func errConnectionKilled() error {
	return closeWith{&mysql.MyError{Code: erConnectionKilled, State: "70100", Message: "Connection was killed"}}
}

// asClientError is the error a client sees for a failure to reach a
// backend: the server's own error when it sent one.
func asClientError(err error) *mysql.MyError {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me
	}
	return errNoBackend(err)
}

// errInternal reports a bug (a recovered panic) without ending the session.
func errInternal(what string) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000",
		Message: "Switchyard internal error (the statement was not completed; see the proxy log): " + shortText(what)}
}

// errNoMaster: a statement for the master waited hold_timeout and no
// master came; the message says why when the proxy knows (a failover
// that is blocked, writes held, the master unreachable).
func errNoMaster(t *backend.Topology, err error) *mysql.MyError {
	why := ""
	switch {
	case t.Master == "":
		why = "no master is known"
	case t.FailoverBlocked != "":
		why = "master " + t.Master + " is down and no failover will replace it: " + t.FailoverBlocked
	case t.Holding:
		why = "writes are held for a topology change"
	default:
		why = "master " + t.Master + " cannot be reached (" + shortErr(err) + ")"
	}
	return &mysql.MyError{Code: mysql.ER_OPTION_PREVENTS_STATEMENT, State: "HY000",
		Message: "Switchyard: no writable master within failover.hold_timeout: " + why + "; reads are served by the replicas"}
}

// errReadYourWrites: a read must see the session's last write, no replica
// has applied it yet, and there is no master to read it from.
func errReadYourWrites(gtid string, t *backend.Topology) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000",
		Message: "Switchyard: this read must see the session's last write (" + gtid + "), no replica has applied it within " +
			"routing.gtid_wait_timeout, and there is no master to read it from (" + masterState(t) + ")"}
}

func masterState(t *backend.Topology) string {
	switch {
	case t.Master == "":
		return "no master is known"
	case t.FailoverBlocked != "":
		return "master " + t.Master + " is down: " + t.FailoverBlocked
	}
	return "master " + t.Master + " is down"
}

// errNoServer: a login found no server of its cluster that answers.
func errNoServer(cluster string, err error) *mysql.MyError {
	return &mysql.MyError{Code: 2003, State: "HY000",
		Message: fmt.Sprintf("Switchyard: no server of cluster %s answers (waited failover.hold_timeout): %v", cluster, shortErr(err))}
}

// errCrossCluster: a statement or transaction would span two clusters.
func errCrossCluster(err error) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_NOT_SUPPORTED_YET, State: "42000", Message: "Switchyard: " + err.Error()}
}

// isRefused: nothing listens at the server's address (it is down, not
// merely slow): evidence worth a health check now.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func errNoBackend(err error) *mysql.MyError {
	if me, ok := backend.AsMyError(err); ok {
		return me
	}
	if errors.Is(err, backend.ErrNoMaster) {
		return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000", Message: "Switchyard: no writable master is available"}
	}
	return &mysql.MyError{Code: 2003, State: "HY000", Message: fmt.Sprintf("Switchyard: cannot reach backend: %v", shortErr(err))}
}

func errRouting(err error) *mysql.MyError {
	switch {
	case errors.Is(err, router.ErrNoMaster):
		return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000", Message: "Switchyard: no writable master is available"}
	case errors.Is(err, router.ErrNoReplica):
		return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000", Message: "Switchyard: " + err.Error()}
	}
	return &mysql.MyError{Code: mysql.ER_UNKNOWN_ERROR, State: "HY000", Message: "Switchyard: " + err.Error()}
}

func errHeld(err error) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_LOCK_WAIT_TIMEOUT, State: "HY000",
		Message: "Switchyard: no master available within failover.hold_timeout (" + shortErr(err) + ")"}
}

func errPacketTooBig(max int) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_NET_PACKET_TOO_LARGE, State: "08S01",
		Message: fmt.Sprintf("Got a packet bigger than 'max_allowed_packet' bytes (%d)", max)}
}

func errUnknownCommand(cmd byte) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_UNKNOWN_COM_ERROR, State: "08S01",
		Message: fmt.Sprintf("Unknown command 0x%02x", cmd)}
}

func errUnsupportedCommand(name string) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_NOT_SUPPORTED_YET, State: "42000",
		Message: fmt.Sprintf("Switchyard does not support %s", name)}
}

func errUnknownStmt(id uint32, where string) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_UNKNOWN_STMT_HANDLER, State: "HY000",
		Message: fmt.Sprintf("Unknown prepared statement handler (%d) given to %s", id, where)}
}

func errMalformed(what string) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_MALFORMED_PACKET, State: "HY000",
		Message: "Malformed communication packet: " + what}
}

func errTooManyConnections() *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_CON_COUNT_ERROR, State: "08004", Message: "Too many connections"}
}

func errAccessDenied(user, host string, usedPassword bool) *mysql.MyError {
	yes := "YES"
	if !usedPassword {
		yes = "NO"
	}
	return &mysql.MyError{Code: mysql.ER_ACCESS_DENIED_ERROR, State: "28000",
		Message: fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", user, host, yes)}
}

func errShuttingDown() *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_SERVER_SHUTDOWN, State: "08S01", Message: "Switchyard is shutting down"}
}

func shortErr(err error) string { return shortText(err.Error()) }

func shortText(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
