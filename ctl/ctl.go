// Package ctl is presencectl, the command line over presenced's REST API for admins and power
// users: status, everyone's presence, switches and their previews, the journal, drift and
// its repair, profiles, external triggers, reloading the configuration, set-password links and
// the health of an instance.
// cmd/presencectl only runs Main.
//
// Where presenced is and who is asking come from flags, then the environment, then a
// configuration file, in that order:
//
//	--url        PRESENCECTL_URL         url:         presenced's address (default http://127.0.0.1:8080)
//	--token      PRESENCECTL_TOKEN       token:       the API token (the admin's or a user's)
//	--token-file PRESENCECTL_TOKEN_FILE  token_file:  a file holding the token
//	--user       PRESENCECTL_USER        user:        the user the token belongs to: sent with
//	                                                  HTTP Basic auth (needed for tokens
//	                                                  presenced holds as hashes), and the user of
//	                                                  status, journal and profiles when none is named
//
// The configuration file is $XDG_CONFIG_HOME/presencectl/config.yaml (~/.config/... when
// XDG_CONFIG_HOME is unset), or the one --config or PRESENCECTL_CONFIG names. The variables are
// not PRESENCED_*: presenced refuses unknown variables of its own prefix.
//
// The exit codes (ExitOK ... ExitOutOfSync) are the same for every command, so that scripts
// can rely on them.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Exit codes of presencectl.
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitError: presenced failed (HTTP 5xx other than 503), answered something presencectl
	// does not understand, or anything else went wrong.
	ExitError = 1
	// ExitUsage: a wrong command line (unknown command or flag, missing argument) or
	// configuration (an unreadable configuration file or token file, a bad URL).
	ExitUsage = 2
	// ExitUnreachable: presenced did not answer (connection refused, timeout, unknown host).
	ExitUnreachable = 3
	// ExitDenied: the token was refused (HTTP 401), may not do that (403), or the client
	// address is throttled after failed authentications (429).
	ExitDenied = 4
	// ExitNotFound: no such user, profile or endpoint (HTTP 404), e.g. reload on a presenced
	// without the reload endpoint.
	ExitNotFound = 5
	// ExitRefused: presenced refused the request as invalid or conflicting (HTTP 400, 409,
	// 413, 422), e.g. an "until" in the past or deleting the active profile.
	ExitRefused = 6
	// ExitUnavailable: presenced cannot serve it now (HTTP 503: the state store is
	// unavailable, no leader); try again later.
	ExitUnavailable = 7
	// ExitOutOfSync: the request was carried out but the PBX does not match: drift found
	// users out of sync; a switch or reconcile left operations failed (presenced retries them).
	ExitOutOfSync = 8
)

// DefaultURL is where presencectl looks for presenced when nothing says otherwise.
const DefaultURL = "http://127.0.0.1:8080"

// Env is what presencectl runs with: its standard streams and environment.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// HTTP does the requests; nil means a client with the --timeout flag's timeout.
	HTTP *http.Client
	// Version is presencectl's version, printed by --version; empty leaves the flag out.
	Version string
}

// exitError carries the exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a wrong command line or configuration.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// outOfSync is the error of a command whose request was carried out but left the PBX out of
// sync; the command has already written its output.
func outOfSync(format string, args ...any) error {
	return &exitError{code: ExitOutOfSync, err: fmt.Errorf(format, args...)}
}

// ExitCode is the exit code for err (nil: ExitOK).
func ExitCode(err error) int {
	var ee *exitError
	var ae *APIError
	var ce *ConnError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		return ExitUnreachable
	case errors.As(err, &ae):
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
			return ExitDenied
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return ExitRefused
		case http.StatusServiceUnavailable:
			return ExitUnavailable
		}
	}
	return ExitError
}

// Main runs presencectl with args (without the program name) and returns its exit code.
func Main(ctx context.Context, args []string, env Env) int {
	root := Command(&env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	var ae *APIError
	var ce *ConnError
	if !errors.As(err, &ee) && !errors.As(err, &ae) && !errors.As(err, &ce) {
		// Cobra's own errors: an unknown command or flag, a wrong number of arguments.
		err = &exitError{code: ExitUsage, err: fmt.Errorf("%w (see presencectl --help)", err)}
	}
	fmt.Fprintf(env.Stderr, "presencectl: %v\n", err)
	return ExitCode(err)
}

// settings are the global flags.
type settings struct {
	url, token, tokenFile, user, config string
	json                                bool
	timeout                             time.Duration
}

// fileConfig is the configuration file.
type fileConfig struct {
	URL       string `yaml:"url"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	User      string `yaml:"user"`
}

// app is one run: the settings resolved, the client, the output.
type app struct {
	env    *Env
	set    settings
	client *Client
	user   string // the configured user (--user, PRESENCECTL_USER, user:)
}

// Command returns presencectl's root command with every subcommand (for Main, shell
// completion, and generated documentation such as a man page).
func Command(env *Env) *cobra.Command {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "presencectl",
		Short: "Drive presenced, the presence-profile daemon for Asterisk, from the command line",
		Long: `presencectl drives presenced over its REST API: users' status, everyone's presence,
switches and their previews, the journal, drift and its repair, profiles, external
triggers, configuration reloads, set-password links and an instance's health.

Where presenced is and the token come from flags, the environment (PRESENCECTL_URL,
PRESENCECTL_TOKEN, PRESENCECTL_TOKEN_FILE, PRESENCECTL_USER) or the configuration file
$XDG_CONFIG_HOME/presencectl/config.yaml (keys url, token, token_file, user), in that order.

Exit codes, the same for every command:
  0  done
  1  presenced failed (HTTP 5xx), an answer presencectl does not understand, anything else
  2  wrong command line or configuration
  3  presenced did not answer (connection refused, timeout, unknown host)
  4  the token was refused (401), may not do that (403), or the address is throttled (429)
  5  no such user, profile or endpoint (404)
  6  the request was refused as invalid or conflicting (400, 409, 413, 422)
  7  presenced cannot serve it now (503: state store unavailable, no leader; instance: not
     ready); retry later
  8  carried out, but the PBX does not match (drift found; operations failed)`,
		Version:           env.Version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w (see --help)", err)}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.set.url, "url", "", "presenced's address (env PRESENCECTL_URL; default "+DefaultURL+")")
	pf.StringVar(&a.set.token, "token", "", "API token (env PRESENCECTL_TOKEN)")
	pf.StringVar(&a.set.tokenFile, "token-file", "", "file holding the API token (env PRESENCECTL_TOKEN_FILE)")
	pf.StringVar(&a.set.user, "user", "", "the user the token belongs to: sent with HTTP Basic auth, and the default USER (env PRESENCECTL_USER)")
	pf.StringVar(&a.set.config, "config", "", "configuration file (env PRESENCECTL_CONFIG; default $XDG_CONFIG_HOME/presencectl/config.yaml)")
	pf.BoolVar(&a.set.json, "json", false, "print presenced's answer as JSON instead of text")
	pf.DurationVar(&a.set.timeout, "timeout", 30*time.Second, "how long to wait for each answer")

	root.AddCommand(a.statusCmd(), a.whoCmd(), a.switchCmd(), a.previewCmd(), a.journalCmd(),
		a.driftCmd(), a.reconcileCmd(), a.profilesCmd(), a.triggerCmd(), a.reloadCmd(), a.passwdCmd(), a.instanceCmd())
	return root
}

// setup resolves the settings: flags, then the environment, then the configuration file.
func (a *app) setup() error {
	getenv := a.env.Getenv
	path, explicit := a.set.config, a.set.config != ""
	if !explicit {
		path, explicit = getenv("PRESENCECTL_CONFIG"), getenv("PRESENCECTL_CONFIG") != ""
	}
	if !explicit {
		path = defaultConfigPath(getenv)
	}
	var fc fileConfig
	if path != "" {
		var err error
		if fc, err = readConfig(path, explicit); err != nil {
			return err
		}
	}
	pick := func(flag, envName, file string) string {
		if flag != "" {
			return flag
		}
		if v := getenv(envName); v != "" {
			return v
		}
		return file
	}
	rawURL := pick(a.set.url, "PRESENCECTL_URL", fc.URL)
	if rawURL == "" {
		rawURL = DefaultURL
	}
	base, err := url.Parse(rawURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageError("url %q: not an http:// or https:// address", rawURL)
	}
	token := pick(a.set.token, "PRESENCECTL_TOKEN", "")
	tokenFile := pick(a.set.tokenFile, "PRESENCECTL_TOKEN_FILE", "")
	if token == "" && tokenFile == "" { // a flag or variable beats the file's token and token_file
		token, tokenFile = fc.Token, fc.TokenFile
	}
	if token != "" && tokenFile != "" {
		return usageError("both a token and a token file: give one")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return usageError("token file: %v", err)
		}
		token = strings.TrimRight(string(b), "\r\n")
	}
	a.user = pick(a.set.user, "PRESENCECTL_USER", fc.User)
	hc := a.env.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: a.set.timeout}
	}
	a.client = &Client{Base: base, Token: token, User: a.user, HTTP: hc}
	return nil
}

// defaultConfigPath is $XDG_CONFIG_HOME/presencectl/config.yaml, or ~/.config/... ; empty
// when neither can be found.
func defaultConfigPath(getenv func(string) string) string {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "presencectl", "config.yaml")
}

// readConfig reads the configuration file; a missing file is an error only when it was named.
func readConfig(path string, named bool) (fileConfig, error) {
	var fc fileConfig
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return fc, nil
	}
	if err != nil {
		return fc, usageError("configuration file: %v", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, usageError("configuration file %s: %v", path, err)
	}
	return fc, nil
}

// userArg is the user a command names, or the configured user when it names none.
func (a *app) userArg(args []string) (string, error) {
	u := a.user
	if len(args) > 0 {
		u = args[0]
	}
	if u == "" {
		return "", usageError("name a user (or set one with --user, PRESENCECTL_USER or user: in the configuration file)")
	}
	return checkName("user", u)
}

// checkName refuses a path segment that would leave the path it belongs to.
func checkName(what, s string) (string, error) {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return "", usageError("%s %q: not a name", what, s)
	}
	return s, nil
}
