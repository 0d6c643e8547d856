// Package atomicfile replaces a file so that a crash leaves either the
// old content or the new, never a mix: the state file and the config
// file the admin port edits are written this way.
//
// It owns no state; any goroutine may call Write (callers serialise
// writes to one path).
package atomicfile
