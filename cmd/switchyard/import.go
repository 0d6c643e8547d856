package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/importer"
)

// cmdImport writes a switchyard.yaml from MHA, Mycat or Amoeba configs.
func cmdImport(args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	var f importer.Files
	fs.Func("mha", "MHA application config (e.g. /etc/masterha/app1.cnf); repeat it for each MHA manager: one cluster each", func(path string) error {
		f.MHA = append(f.MHA, path)
		return nil
	})
	fs.StringVar(&f.MHADefault, "mha-default", "", "MHA global defaults (e.g. /etc/masterha_default.cnf)")
	fs.StringVar(&f.MycatSchema, "mycat-schema", "", "Mycat schema.xml")
	fs.StringVar(&f.MycatServer, "mycat-server", "", "Mycat server.xml")
	fs.StringVar(&f.MycatDataHost, "mycat-datahost", "", "import only this dataHost (default: every dataHost, one cluster each)")
	fs.StringVar(&f.AmoebaDBServers, "amoeba-dbservers", "", "Amoeba dbServers.xml")
	fs.StringVar(&f.Amoeba, "amoeba", "", "Amoeba amoeba.xml")
	out := fs.String("out", "switchyard.yaml", `where to write ("-": standard output)`)
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	plan, err := importer.Import(f)
	if err != nil {
		return err
	}
	yaml := importer.Render(plan)
	unset, err := checkImported(yaml)
	if err != nil {
		return fmt.Errorf("the imported config does not load (please report this): %w", err)
	}
	if *out == "-" {
		_, err = os.Stdout.Write(yaml)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	file, err := os.OpenFile(*out, flags, 0o600) // it holds passwords
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: choose another --out or add --force", *out)
		}
		return err
	}
	if _, err := file.Write(yaml); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	backends := 0
	for _, c := range plan.Clusters {
		backends += len(c.Backends)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d cluster(s), %d backends, %d users, %d source settings not carried over (listed at its end)\n",
		*out, len(plan.Clusters), backends, len(plan.Users), len(plan.Skipped))
	if len(unset) > 0 {
		fmt.Fprintf(os.Stderr, "set %s in the environment (or write the passwords in the file) before running it\n", strings.Join(unset, ", "))
	}
	fmt.Fprintf(os.Stderr, "next: switchyard check --config %s\n", *out)
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)

// checkImported loads the generated config as `switchyard run` would; the
// ${VARIABLES} it names (placeholders for what the sources lacked) are
// returned when unset, and filled with a dummy for the check.
func checkImported(yaml []byte) (unset []string, err error) {
	text := string(yaml)
	for _, line := range strings.Split(text, "\n") {
		value, _, _ := strings.Cut(line, "  # ")
		if strings.HasPrefix(strings.TrimSpace(value), "#") {
			continue // a comment, not a setting
		}
		for _, m := range envRef.FindAllStringSubmatch(value, -1) {
			if _, ok := os.LookupEnv(m[1]); !ok && !slices.Contains(unset, m[1]) {
				unset = append(unset, m[1])
				text = strings.ReplaceAll(text, m[0], "placeholder")
			}
		}
	}
	_, err = conf.Parse([]byte(text), "imported switchyard.yaml")
	return unset, err
}
