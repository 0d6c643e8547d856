// Package cowmap is a map read on every statement and written a handful
// of times in a process's life (one entry per server, cluster or
// statement kind).
//
// Readers load an immutable Go map through an atomic pointer: no lock, and
// a plain map lookup, which on a string key costs about half of a
// sync.Map's (that hashes the key as an interface and walks a trie of
// nodes, each a cache line a cold statement path misses). A writer takes
// the mutex, copies the map with its new entry and publishes the copy;
// the copy is O(entries), fine for maps that stay small.
//
// Any goroutine may call any method.
package cowmap
