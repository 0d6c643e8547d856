package failover

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// maxHistory bounds the failovers and switchovers kept per cluster, in
// memory and in the state file (oldest dropped first).
const maxHistory = 100

// StateFile persists each cluster's epoch, master and history of changes
// in one JSON file, shared by the engines of every cluster. It is written
// whole: to a temporary file, fsynced, renamed over the old one, and the
// directory fsynced, so a crash leaves the old file or the new, never a
// torn one; a failed write is reported, never ignored.
type StateFile struct {
	path     string
	mu       sync.Mutex
	clusters map[string]persisted
}

// persisted is one cluster's entry.
type persisted struct {
	Epoch   uint64   `json:"epoch"`
	Master  string   `json:"master"`
	History []Record `json:"history"`
}

// stateFileContent is the file: one entry per cluster. A file written
// before clusters existed holds one entry's fields at the top level; it
// is read as the entry of cluster "default".
type stateFileContent struct {
	Clusters map[string]persisted `json:"clusters"`
	persisted
}

// OpenStateFile reads path (a missing file is an empty state).
func OpenStateFile(path string) (*StateFile, error) {
	f := &StateFile{path: path, clusters: map[string]persisted{}}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	var c stateFileContent
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("state file %s is not readable (%v): move it away to start afresh", path, err)
	}
	if c.Clusters != nil {
		f.clusters = c.Clusters
	} else if c.Epoch != 0 || c.Master != "" || len(c.History) > 0 {
		f.clusters["default"] = c.persisted
	}
	return f, nil
}

// Path is the file's path.
func (f *StateFile) Path() string { return f.path }

// load returns a cluster's entry.
func (f *StateFile) load(cluster string) (persisted, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.clusters[cluster]
	return p, ok
}

// save replaces a cluster's entry and writes the file.
func (f *StateFile) save(cluster string, p persisted) error {
	if len(p.History) > maxHistory {
		p.History = p.History[len(p.History)-maxHistory:]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters[cluster] = p
	data, err := json.MarshalIndent(stateFileContent{Clusters: f.clusters}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(f.path, data, 0o600)
}
