package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/switchyard/switchyard/check"
	"github.com/switchyard/switchyard/conf"
)

// errCheckFailed makes main exit 1 after the report was printed.
var errCheckFailed = errors.New("pre-flight check found errors")

func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("config", "switchyard.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		// Config mistakes are findings too: one line each, then the verdict.
		fmt.Println(err)
		fmt.Println("verdict: NOT OK — the config does not load")
		return errCheckFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := check.Run(ctx, cfg)
	r.Print(os.Stdout)
	if r.Errors() > 0 {
		return errCheckFailed
	}
	return nil
}
