// Package web owns the HTTP listener: the live status page at / (HTML,
// JavaScript and SVG embedded in the binary, no external assets), its data
// at /api/status (JSON), Prometheus' /metrics, the probes /healthz and
// /readyz, and /debug/pprof/ when enabled.
//
// Everything except the two probes asks for HTTP basic auth with the
// listener's credentials (by default the admin port's): the page shows
// addresses, users and statements. What it serves comes from Sources,
// which cmd wires to the admin package's Status (the same facts as SHOW
// BACKENDS, SHOW FAILOVERS and SHOW SESSIONS) and to metrics; this package
// imports neither proxy nor cmd. net/http runs one goroutine per request;
// the package keeps no state of its own between requests.
package web
