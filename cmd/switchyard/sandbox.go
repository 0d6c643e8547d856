package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/sandbox"
)

func cmdSandbox(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("sandbox needs up, down or status")
	}
	fs := flag.NewFlagSet("sandbox "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "./sandbox", "directory holding the datadirs and generated config")
	basePort := fs.Int("base-port", 13306, "master port; replicas use the next ports, the proxy base+100")
	replicas := fs.Int("replicas", 2, "number of replicas (per cluster)")
	clusters := fs.Int("clusters", 1, "number of clusters: c1…cN, cluster k's master on base-port+10(k-1), database dbK on cluster cK")
	flavor := fs.String("flavor", "mariadb", "server software: mariadb (Debian's) or mysql (Oracle MySQL 9.7 from a Debian sid chroot, built once under /var/cache/switchyard)")
	purge := fs.Bool("purge", false, "down: also delete the sandbox directory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "up":
		s, err := sandbox.Up(ctx, sandbox.Options{Dir: *dir, BasePort: *basePort, Replicas: *replicas, Clusters: *clusters,
			Flavor: backend.Flavor(*flavor), Log: os.Stdout})
		if err != nil {
			return err
		}
		fmt.Printf(`
Sandbox ready. Config: %[1]s
  start the proxy:   switchyard run --config %[1]s
  connect (app):     mariadb -h127.0.0.1 -P%[2]d -uapp -papp
  admin port:        mariadb -h127.0.0.1 -P%[3]d -uadmin -padmin
  master directly:   mariadb -h127.0.0.1 -P%[4]d -u%[5]s -p%[6]s
`, s.ConfigPath(), s.BasePort+100, s.BasePort+101, s.BasePort, sandbox.MonitorUser, sandbox.MonitorPassword)
		return nil
	case "down":
		return sandbox.Down(*dir, *purge, os.Stdout)
	case "status":
		s, err := sandbox.Open(*dir)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPORT\tROLE\tREAD_ONLY\tGTID\tIO\tSQL\tLAG\tERROR")
		for _, st := range s.Status(ctx) {
			io, sqlT, lag, errText := "-", "-", "-", ""
			if st.Replica != nil {
				io, sqlT = st.Replica.IOState, yesNo(st.Replica.SQLRunning)
				if st.Replica.SecondsBehind != nil {
					lag = fmt.Sprintf("%ds", *st.Replica.SecondsBehind)
				}
				errText = st.Replica.LastIOError + st.Replica.LastSQLError
			}
			if st.Err != nil {
				errText = st.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.Port, st.Role(), st.ReadOnly,
				st.GTIDPos, io, sqlT, lag, errText)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown sandbox command %q (use up, down or status)", args[0])
	}
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}
