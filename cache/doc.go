// Package cache keeps the results of reads that query rules mark with
// cache_ttl, so a repeated read is answered without a server: the bytes
// the client received, replayed as they were.
//
// A result is never older than the last write through Switchyard to a
// table it read. Every write invalidates its tables twice: before it is
// sent and once its reply (or its transaction's end) arrived, each time
// bumping the tables' generation. A read that fills the cache took the
// generations before it ran (Begin); Put drops the result if any moved
// meanwhile, so a read racing a write never stores what the write
// replaced. Other instances get the invalidations through etcd (cmd
// wires OnInvalidate and Invalidate).
//
// The cache is bounded in bytes (least recently used first out) and
// shared by every session: one mutex guards the index; entries are
// immutable once stored, so a hit's bytes are written to the client
// without holding it.
package cache
