// Command presenced is the presence-profile daemon for Asterisk 22: it keeps every user's
// presence profile in Redis and turns profile switches into PBX state over AMI and ARI.
//
// Usage:
//
//	presenced [-config presenced.yaml] [-log-level info] [-log-format text|json]
//	          [-http-listen 127.0.0.1:8080] [-instance-id ID] [-check-config] [-print-hints] [-version] [-help]
//	presenced -hash-secret < token.txt
//	presenced -hash-password < password.txt
//	presenced -config presenced.yaml -password-link alice
//
// Every configuration key can also be set from the environment: asterisk.ami.secret is
// PRESENCED_ASTERISK_AMI_SECRET. Precedence: flags, then environment, then the file.
//
// -hash-secret reads a token or PIN from the first line of standard input and prints an
// argon2id hash of it for token_hash, pin_hash or api.admin_token_hash; a token must pass the
// same strength check as in the configuration. -hash-password does the same for a web app
// password (a user's password_hash).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // time zones for schedules in a scratch image

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
)

// version is presenced's semantic version (semver.org); a release build may set it with
// -ldflags "-X main.version=1.2.3".
var version = "0.13.0-dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// realMain runs presenced and returns its exit code: 0 after a clean shutdown, 2 for a bad
// command line or configuration, 1 when the daemon failed.
func realMain(args, environ []string, stdout, stderr io.Writer) int {
	cfg, opts, err := loadConfig(args, environ, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -help, --help, -h: the usage went to stderr
	}
	if err != nil {
		fmt.Fprintf(stderr, "presenced: %v\n", err)
		return 2
	}
	if opts.help {
		opts.usage(stdout)
		return 0
	}
	if opts.version {
		bi := readBuildInfo()
		fmt.Fprintf(stdout, "presenced %s (revision %s, %s)\n", bi.Version, bi.Revision, bi.GoVersion)
		return 0
	}
	if opts.healthcheck {
		return healthcheck(cfg, stdout, stderr)
	}
	if opts.hashSecret {
		return hashSecret(os.Stdin, stdout, stderr)
	}
	if opts.hashPass {
		return hashPassword(os.Stdin, stdout, stderr)
	}
	if opts.printHints {
		if err := featurecode.WriteHints(stdout, cfg.catalog, cfg.Asterisk.Naming); err != nil {
			fmt.Fprintf(stderr, "presenced: %v\n", err)
			return 1
		}
		return 0
	}
	if opts.checkConfig {
		for _, w := range append(cfg.offlineWarnings, cfg.warnings()...) {
			fmt.Fprintf(stderr, "presenced: warning: %s\n", w)
		}
		fmt.Fprintln(stdout, "presenced: configuration ok")
		return 0
	}
	if opts.pwLink != "" {
		return passwordLink(cfg, opts.pwLink, stdout, stderr)
	}
	log := newLogger(cfg.Log, stderr)
	for _, w := range cfg.warnings() {
		log.Warn("configuration: " + w)
	}
	if cfg.service, err = serviceManagerFrom(getenvOf(environ), os.Getpid()); err != nil {
		log.Warn("not telling systemd how presenced is doing", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the configuration (reload.go); unhandled, it would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg.reloadSignals = hup
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("presenced stopped", "err", err)
		return 1
	}
	return 0
}

// getenvOf looks variables up in environ (as os.Environ), the last one winning.
func getenvOf(environ []string) func(string) string {
	return func(key string) string {
		v := ""
		for _, kv := range environ {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: logLevels[c.Level], ReplaceAttr: durationString}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// durationString writes a time.Duration as Go writes it ("28ms", "1m30s") instead of the JSON
// handler's integer nanoseconds; the text handler writes them so already.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// pinPattern is what a PIN is (presence validates pin the same way).
var pinPattern = regexp.MustCompile(`^[0-9]{1,8}$`)

// hashSecret prints an argon2id hash of the secret on the first line of in: a PIN (1-8 digits)
// or a token that passes secret.CheckToken. It returns the exit code: 2 when the secret is
// missing or too weak.
func hashSecret(in io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "presenced: -hash-secret: read standard input: %v\n", err)
		return 2
	}
	s := strings.TrimRight(line, "\r\n")
	if s == "" {
		fmt.Fprintln(stderr, "presenced: -hash-secret: no secret on the first line of standard input")
		return 2
	}
	if !pinPattern.MatchString(s) {
		if err := secret.CheckToken(s); err != nil {
			fmt.Fprintf(stderr, "presenced: -hash-secret: not a PIN (1-8 digits), and as a token %v\n", err)
			return 2
		}
	}
	h, err := secret.NewHash(s)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -hash-secret: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// hashPassword prints an argon2id hash of the web app password on the first line of in (for a
// user's password_hash), after checking it as the web app checks a new password. It never
// prints the password.
func hashPassword(in io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "presenced: -hash-password: read standard input: %v\n", err)
		return 2
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := account.CheckPassword(pw); err != nil {
		fmt.Fprintf(stderr, "presenced: -hash-password: %v\n", err)
		return 2
	}
	h, err := secret.NewHash(pw)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// passwordLink makes a one-time set-password link for a user in the configured Redis (the web
// app's accounts, package account) and prints the web app's path with it; the admin gives the
// user that path on presenced's address. The embedded store lives in the daemon's process, so
// there the admin page or the API makes links instead.
func passwordLink(cfg Config, name string, stdout, stderr io.Writer) int {
	if cfg.Redis.embedded() {
		fmt.Fprintln(stderr, "presenced: -password-link needs redis.url or redis.sentinel: the embedded store lives in the daemon (make the link on the admin page, or POST /api/v1/users/{user}/password-link)")
		return 2
	}
	u, ok := cfg.catalog.User(presence.UserID(name))
	if !ok {
		if u, ok = cfg.catalog.UserByExtension(name); !ok {
			fmt.Fprintf(stderr, "presenced: -password-link: no user %q\n", name)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := newLogger(cfg.Log, stderr)
	for _, w := range cfg.warnings() {
		log.Warn("configuration: " + w)
	}
	store, err := presence.OpenRedis(ctx, storeOptions(cfg, log, nil))
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -password-link: %v\n", err)
		return 1
	}
	defer store.Close(context.Background())
	acc, err := account.New(account.Options{Redis: store.Client(), Catalog: cfg.catalog, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -password-link: %v\n", err)
		return 1
	}
	link, err := acc.NewLink(ctx, u.ID, 0)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -password-link: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "/set-password?token=%s\n(for %s, once, until %s)\n", link.Token, u.ID, link.Expires.Format(time.RFC3339))
	return 0
}
