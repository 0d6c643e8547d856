package failover

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"go.uber.org/zap"
)

// hook runs a configured command with the topology change in its
// environment; an empty command does nothing.
func (e *Engine) hook(ctx context.Context, command, event string, old, new ServerConfig) error {
	if command == "" {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, e.cfg().Hooks.Timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", command)
	oldHost, oldPort, _ := net.SplitHostPort(old.Addr)
	newHost, newPort, _ := net.SplitHostPort(new.Addr)
	// Host and port apart too: MHA's master_ip_failover scripts take them
	// as separate arguments (switchyard import writes such hooks).
	cmd.Env = append(os.Environ(),
		"SWITCHYARD_EVENT="+event, "SWITCHYARD_CLUSTER="+e.cluster.Name,
		"SWITCHYARD_OLD_MASTER="+old.Addr, "SWITCHYARD_OLD_MASTER_NAME="+old.Name,
		"SWITCHYARD_OLD_MASTER_HOST="+oldHost, "SWITCHYARD_OLD_MASTER_PORT="+oldPort,
		"SWITCHYARD_NEW_MASTER="+new.Addr, "SWITCHYARD_NEW_MASTER_NAME="+new.Name,
		"SWITCHYARD_NEW_MASTER_HOST="+newHost, "SWITCHYARD_NEW_MASTER_PORT="+newPort)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hook %q: %w: %s", command, err, strings.TrimSpace(string(out)))
	}
	e.log.Info("hook ran", zap.String("event", event), zap.String("command", command), zap.String("output", strings.TrimSpace(string(out))))
	return nil
}
