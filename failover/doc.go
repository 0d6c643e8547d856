// Package failover replaces MHA's masterha_manager: it decides and carries
// out master changes.
//
//   - decide.go: pure functions on what the servers report — Confirm (is
//     the master really dead, or only our path to it?), PickCandidate (the
//     most advanced eligible replica), Errant (GTIDs a returning server has
//     that the master lacks). Tested on fixture topologies.
//   - actuator.go: the SQL that changes servers (inspect, fence, wait
//     applied, promote, repoint), one statement at a time under deadlines.
//   - engine.go: the sequence of a failover or switchover with timed steps,
//     hooks, history and state file, cooldown, automatic rejoin of returning
//     masters; with a Coordinator (package coord) it acts only as leader and
//     publishes changes by compare-and-swap.
//
// Goroutines: Engine.Run ticks (and is woken by the monitor); the admin
// port calls Switchover and Failover from its sessions. Engine.mu lets one
// change run at a time. The engine acts on servers and on backend.Cluster;
// it never touches client sessions.
package failover
