// Package check is Switchyard's pre-flight check (what masterha_check_repl
// did for MHA): it validates the config and asks every backend whether the
// topology can be proxied and failed over, and says what to do about each
// problem. It only reads (SELECT, SHOW); it changes nothing.
package check
