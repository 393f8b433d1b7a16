// Command presencectl drives presenced, the presence-profile daemon for Asterisk, over its
// REST API: users' status, everyone's presence, switches, the journal, drift and its repair,
// profiles, external triggers, reloads and set-password links. `presencectl --help` lists the
// commands and the exit codes; package ctl has them all.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/presenced/presenced/ctl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.Env{Stdout: os.Stdout, Stderr: os.Stderr, Version: version})
	stop()
	os.Exit(code)
}
