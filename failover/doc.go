// Package failover replaces MHA's masterha_manager: it decides and carries
// out master changes.
//
//   - decide.go: pure functions on what the servers report — Confirm (is
//     the master really dead, or only our path to it?), PickCandidate (the
//     most advanced eligible replica), Errant (GTIDs a returning server has
//     that the master lacks). Tested on fixture topologies.
//   - procedure.go: the one promotion procedure failover and switchover
//     share (hold, pick, fence, apply, promote, repoint, retarget, verify)
//     with one undo path: a failure from the fence on is undone newest
//     first, and an old master is unfenced only once the candidate is
//     read-only again. Tested step by step against fake servers.
//   - servers.go: Servers, what the procedure needs of the servers;
//     actuator.go implements it with SQL, one statement at a time under
//     deadlines.
//   - engine.go: the automatic loop (detect, confirm, cooldown after an
//     automatic failover only), why a failover is blocked (Blocked, also
//     in the topology for every surface), settings a reload swaps without
//     waiting for a change in progress; rejoin.go: returning masters
//     become replicas unless diverged; record.go: history (bounded);
//     state.go: the state file shared by every cluster's engine (fsync,
//     checked rename); hooks.go: the operator's commands around a change.
//
// One Engine acts on one cluster: a failover in one cluster never holds,
// fences or slows another's.
//
// With a Coordinator (package coord) the engine acts only as leader and
// publishes changes by compare-and-swap.
//
// Goroutines: Engine.Run ticks (and is woken by the monitor); the admin
// port calls Switchover and Failover from its sessions. Engine.mu lets one
// change run at a time. The engine acts on servers and on backend.Cluster;
// it never touches client sessions.
package failover
