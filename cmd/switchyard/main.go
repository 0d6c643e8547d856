package main

import (
	"errors"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `switchyard — MySQL-protocol proxy with read/write split and failover

Usage:
  switchyard run --config FILE [--skip-check]   run the proxy in the foreground
  switchyard check --config FILE                pre-flight check of config and topology
  switchyard import [--mha app1.cnf [--mha-default masterha_default.cnf]]
                    [--mycat-schema schema.xml [--mycat-server server.xml]]
                    [--amoeba-dbservers dbServers.xml [--amoeba amoeba.xml]] [--out FILE]
                                                write a switchyard.yaml from MHA, Mycat or Amoeba configs
  switchyard sandbox up [--dir D] [--base-port P] [--replicas N] [--clusters N] [--flavor mariadb|mysql]
  switchyard sandbox down [--dir D] [--purge]
  switchyard sandbox status [--dir D]
  switchyard switchover [--config FILE] [--cluster C] [--to NAME]   planned master change (via the admin port)
  switchyard failover   [--config FILE] [--cluster C] [--to NAME]   forced failover (via the admin port)
  switchyard status     [--config FILE]               SHOW BACKENDS of the running proxy
  switchyard version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "sandbox":
		err = cmdSandbox(os.Args[2:])
	case "check":
		err = cmdCheck(os.Args[2:])
		if errors.Is(err, errCheckFailed) {
			os.Exit(1)
		}
	case "import":
		err = cmdImport(os.Args[2:])
	case "switchover", "failover", "status":
		err = cmdAdmin(os.Args[1], os.Args[2:])
	case "version", "--version", "-v":
		fmt.Println("switchyard", version)
	case "help", "--help", "-h":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard:", err)
		os.Exit(1)
	}
}
