package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/conf"
)

// cmdAdmin runs one admin statement against a running Switchyard (the
// admin address and credentials come from its config file) and prints
// the result as a table: switchover, failover, status.
func cmdAdmin(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "switchyard.yaml", "config file of the running Switchyard")
	to := fs.String("to", "", "target backend name")
	cluster := fs.String("cluster", "", "the cluster (when the proxy fronts several)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Admin.Listen == "" {
		return fmt.Errorf("%s has no admin.listen", *path)
	}
	var stmt string
	switch name {
	case "switchover", "failover":
		stmt = strings.ToUpper(name)
		if *cluster != "" {
			stmt += " '" + strings.ReplaceAll(*cluster, "'", "") + "'"
		}
		if *to != "" {
			stmt += " TO '" + strings.ReplaceAll(*to, "'", "") + "'"
		}
	case "status":
		stmt = "SHOW BACKENDS"
	}
	db, err := adminDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(stmt)
	if err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	defer rows.Close()
	return printRows(rows)
}

// adminDB opens the running proxy's admin port with the config's
// credentials.
func adminDB(cfg *conf.Config) (*sql.DB, error) {
	dsn := mysql.NewConfig()
	dsn.User, dsn.Passwd, dsn.Net, dsn.Addr = cfg.Admin.User, cfg.Admin.Password.Value(), "tcp", cfg.Admin.Listen
	return sql.Open("mysql", dsn.FormatDSN())
}

// printRows prints a result as an aligned table.
func printRows(rows *sql.Rows) error {
	cols, _ := rows.Columns()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = v.String
			if !v.Valid {
				parts[i] = "NULL"
			}
		}
		fmt.Fprintln(tw, strings.Join(parts, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return rows.Err()
}
