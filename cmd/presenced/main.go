// Command presenced is the presence-profile daemon for Asterisk 22: it keeps every user's
// presence profile in Redis and turns profile switches into PBX state over AMI and ARI.
//
// Usage:
//
//	presenced [-config presenced.yaml] [-log-level info] [-log-format text|json]
//	          [-http-listen 127.0.0.1:8080] [-instance-id ID] [-check-config] [-print-hints] [-version]
//
// Every configuration key can also be set from the environment: asterisk.ami.secret is
// PRESENCED_ASTERISK_AMI_SECRET. Precedence: flags, then environment, then the file.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // time zones for schedules in a scratch image

	"github.com/presenced/presenced/ari/featurecode"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// realMain runs presenced and returns its exit code: 0 after a clean shutdown, 2 for a bad
// command line or configuration, 1 when the daemon failed.
func realMain(args, environ []string, stdout, stderr io.Writer) int {
	cfg, opts, err := loadConfig(args, environ, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: %v\n", err)
		return 2
	}
	if opts.version {
		fmt.Fprintf(stdout, "presenced %s\n", version)
		return 0
	}
	if opts.printHints {
		if err := featurecode.WriteHints(stdout, cfg.catalog, cfg.Asterisk.Naming); err != nil {
			fmt.Fprintf(stderr, "presenced: %v\n", err)
			return 1
		}
		return 0
	}
	if opts.checkConfig {
		fmt.Fprintln(stdout, "presenced: configuration ok")
		return 0
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("presenced stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: logLevels[c.Level]}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}
