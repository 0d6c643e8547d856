// Command switchyard is a MySQL-protocol proxy with read/write split and
// in-process failover for MariaDB/MySQL master–replica clusters. The
// command wires the packages together and nothing more:
//
//	main.go      the subcommands
//	run.go       switchyard run: config, logger, signals, pre-flight, stop
//	app.go       start and stop of everything, in order; listeners that
//	             stop for good stop the process
//	clusters.go  one runtime per cluster (discovery, cluster state,
//	             monitor, failover engine, coordination) and the config's
//	             translation into each package's settings
//	reload.go    RELOAD CONFIG / SIGHUP: apply the whole file, or refuse
//	             it whole with what needs a restart
//	runtime.go   admin changes (users, rules, weights, offline): written
//	             into the file when alone, shared through etcd otherwise
//	sources.go   what the admin port and the metrics read (their Sources)
//
// Goroutines: main waits on signals and listener failures (run.go); each
// listener, engine, monitor and coordinator has its own; with etcd, the
// runtime configuration watch applies changes under the reload lock.
package main
