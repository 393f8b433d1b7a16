package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/presenced/presenced/presence"
)

// Answers of the API that presencectl reads (api/openapi.json describes them).
type (
	userStatus struct {
		User *struct {
			ID        string `json:"id"`
			Name      string `json:"name"`
			Extension string `json:"extension"`
		} `json:"user"`
		Switched       bool                  `json:"switched"`
		Profile        string                `json:"profile"`
		Previous       string                `json:"previous"`
		Info           string                `json:"info"`
		Since          time.Time             `json:"since"`
		Source         string                `json:"source"`
		Actor          string                `json:"actor"`
		Sticky         bool                  `json:"sticky"`
		Until          *time.Time            `json:"until"`
		Trigger        string                `json:"trigger"`
		ReturnsTo      string                `json:"returns_to"`
		ActiveTriggers []json.RawMessage     `json:"active_triggers"`
		NextChange     *nextChange           `json:"next_change"`
		Differences    []presence.Difference `json:"differences"`
		Warnings       []presence.Warning    `json:"warnings"`
		Pending        []presence.Op         `json:"pending"`
		OnCall         string                `json:"on_call"`
		InSync         bool                  `json:"in_sync"`
		ObserveError   string                `json:"observe_error"`
		RepairDue      *time.Time            `json:"repair_due"`
		RepairAttempt  int                   `json:"repair_attempt"`
	}
	nextChange struct {
		At      time.Time `json:"at"`
		Profile string    `json:"profile"`
		Trigger string    `json:"trigger"`
		Kind    string    `json:"kind"`
	}
	presenceList struct {
		Users []presence.PresenceEntry `json:"users"`
	}
	overview struct {
		Users []presence.UserSummary `json:"users"`
	}
	journal struct {
		Entries    []presence.JournalEntry `json:"entries"`
		Unreadable []string                `json:"unreadable"`
	}
	profileList struct {
		Profiles []profileView `json:"profiles"`
	}
	profileView struct {
		presence.Profile
		Personal bool `json:"personal"`
	}
	triggerResult struct {
		Trigger  string `json:"trigger"`
		State    string `json:"state"`
		Switched bool   `json:"switched"`
		Profile  string `json:"profile"`
		Reason   string `json:"reason"`
	}
	instance struct {
		ID          string            `json:"id"`
		Version     string            `json:"version"`
		Role        string            `json:"role"`
		Leader      string            `json:"leader"`
		LeaderEpoch int64             `json:"leader_epoch"`
		LeaderNote  string            `json:"leader_note"`
		Ready       bool              `json:"ready"`
		Checks      map[string]string `json:"checks"`
	}
	passwordLink struct {
		User    string    `json:"user"`
		Token   string    `json:"token"`
		Path    string    `json:"path"`
		Expires time.Time `json:"expires"`
	}
)

// run wraps a command's work: errors that are not already typed exit with ExitError.
func (a *app) run(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd.Context(), cmd, args)
		var ee *exitError
		var ae *APIError
		var ce *ConnError
		if err != nil && !errors.As(err, &ee) && !errors.As(err, &ae) && !errors.As(err, &ce) {
			err = &exitError{code: ExitError, err: err}
		}
		return err
	}
}

// argCount checks the number of arguments, as a usage error.
func argCount(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageError("%s: %s (see presencectl %s --help)", cmd.Name(), argsWanted(min, max, len(args)), cmd.Name())
		}
		return nil
	}
}

func argsWanted(min, max, got int) string {
	switch {
	case min == max:
		return fmt.Sprintf("takes %d argument(s), got %d", min, got)
	case got < min:
		return fmt.Sprintf("takes at least %d argument(s), got %d", min, got)
	}
	return fmt.Sprintf("takes at most %d argument(s), got %d", max, got)
}

// printJSON writes an answer indented, as presenced sent it.
func (a *app) printJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := a.env.Stdout.Write(buf.Bytes())
	return err
}

// printValue writes a value presencectl put together (several answers) as JSON.
func (a *app) printValue(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.printJSON(b)
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [USER]",
		Short: "A user's profile, why and until when, and whether the PBX matches it",
		Long: `status shows a user's active profile, its info, since when and why (source, trigger),
until when and where they return, the next scheduled change, and whether the PBX matches the
profile: the differences in words with the policy of each, warnings, queue changes waiting for
a call to end. Without USER, the configured user (--user).`,
		Args:              argCount(0, 1),
		ValidArgsFunction: a.completeUsers(1),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			user, err := a.userArg(args)
			if err != nil {
				return err
			}
			var st userStatus
			b, err := a.client.Get(ctx, userPath(user), &st)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			return writeStatus(a.env.Stdout, &st)
		}),
	}
}

func (a *app) whoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "who",
		Short: "Everyone's presence as a table",
		Long: `who lists every user's profile (a private one only as its presence state), presence,
info, since when and whether they are on a call: the colleagues' view. Any valid token.`,
		Args: argCount(0, 0),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var pl presenceList
			b, err := a.client.Get(ctx, "/api/v1/presence", &pl)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			return writeWho(a.env.Stdout, pl.Users, time.Now())
		}),
	}
}

// switchFlags are the flags of switch and preview.
type switchFlags struct{ info, until string }

func (a *app) switchCmd() *cobra.Command {
	var f switchFlags
	cmd := &cobra.Command{
		Use:   "switch USER PROFILE",
		Short: "Switch a user to a profile and show what changed on the PBX",
		Long: `switch puts USER in PROFILE (its id) and prints every PBX operation's outcome. With
--until the profile is timed: at that moment the user returns to the previous one. Exits 8
when an operation failed (presenced retries it; the PBX shows drift until then).`,
		Example: `  presencectl switch alice lunch --info "back at 1"
  presencectl switch alice meeting --until 90m`,
		Args:              argCount(2, 2),
		ValidArgsFunction: a.completeUserProfile(),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			return a.doSwitch(ctx, args, f, false)
		}),
	}
	cmd.Flags().StringVar(&f.info, "info", "", "additional info shown with the presence (\"back at 1\")")
	cmd.Flags().StringVar(&f.until, "until", "", "end of a timed profile: an RFC 3339 time or a duration (90m)")
	return cmd
}

func (a *app) previewCmd() *cobra.Command {
	var f switchFlags
	cmd := &cobra.Command{
		Use:               "preview USER PROFILE",
		Short:             "What a switch would do on the PBX, changing nothing",
		Args:              argCount(2, 2),
		ValidArgsFunction: a.completeUserProfile(),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			return a.doSwitch(ctx, args, f, true)
		}),
	}
	cmd.Flags().StringVar(&f.info, "info", "", "additional info, as switch takes it")
	cmd.Flags().StringVar(&f.until, "until", "", "end of a timed profile, as switch takes it")
	return cmd
}

func (a *app) doSwitch(ctx context.Context, args []string, f switchFlags, preview bool) error {
	user, err := checkName("user", args[0])
	if err != nil {
		return err
	}
	body := map[string]string{"profile": args[1]}
	if f.info != "" {
		body["info"] = f.info
	}
	if f.until != "" {
		body["until"] = f.until
	}
	method, path := http.MethodPut, userPath(user, "profile")
	if preview {
		method, path = http.MethodPost, userPath(user, "profile", "preview")
	}
	var res presence.SwitchResult
	b, err := a.client.call(ctx, method, path, body, &res)
	if err != nil {
		return err
	}
	if a.set.json {
		err = a.printJSON(b)
	} else {
		err = writeSwitch(a.env.Stdout, &res)
	}
	if err == nil && !res.InSync && !preview {
		return outOfSync("%s: switched to %s, but not every PBX operation succeeded (presenced retries them)", user, res.To)
	}
	return err
}

func (a *app) journalCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:               "journal [USER]",
		Short:             "A user's switches and repairs, newest first, with each PBX operation's outcome",
		Args:              argCount(0, 1),
		ValidArgsFunction: a.completeUsers(1),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			user, err := a.userArg(args)
			if err != nil {
				return err
			}
			if limit < 1 || limit > 1000 {
				return usageError("--limit %d: from 1 to 1000", limit)
			}
			var j journal
			b, err := a.client.Get(ctx, userPath(user, "journal")+"?limit="+strconv.Itoa(limit), &j)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			return writeJournal(a.env.Stdout, j.Entries, j.Unreadable)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many entries (1-1000)")
	return cmd
}

// driftEntry is one user of drift's answer in JSON: the overview's summary and the status.
type driftEntry struct {
	Summary presence.UserSummary `json:"summary"`
	Status  json.RawMessage      `json:"status"`
}

func (a *app) driftCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drift",
		Short: "Everyone whose PBX state does not match their profile, with the differences in words",
		Long: `drift lists every user out of sync (drift reported under the report policy, operations
that failed, queue changes waiting for a call to end) with what differs, in words. Exits 0
when everyone is in sync, 8 when someone is not. Needs the admin token.`,
		Args: argCount(0, 0),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var ov overview
			if _, err := a.client.Get(ctx, "/api/v1/users?filter=out_of_sync", &ov); err != nil {
				return err
			}
			entries := make([]driftEntry, 0, len(ov.Users))
			statuses := make([]*userStatus, 0, len(ov.Users))
			for _, s := range ov.Users {
				var st userStatus
				b, err := a.client.Get(ctx, userPath(string(s.User)), &st)
				if err != nil {
					return err
				}
				entries = append(entries, driftEntry{Summary: s, Status: b})
				statuses = append(statuses, &st)
			}
			var err error
			if a.set.json {
				err = a.printValue(entries)
			} else {
				err = writeDrift(a.env.Stdout, ov.Users, statuses)
			}
			if err == nil && len(ov.Users) > 0 {
				return outOfSync("%d user(s) out of sync", len(ov.Users))
			}
			return err
		}),
	}
}

// reconcileEntry is one user of reconcile --all's answer in JSON.
type reconcileEntry struct {
	User   string          `json:"user"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func (a *app) reconcileCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "reconcile USER | --all",
		Short: "Put a user's (or everyone's) whole profile back on the PBX now",
		Long: `reconcile puts the user's whole profile back on the PBX now, whatever the drift policies
say: the one-call fix for "your device status does not match your profile". --all does it for
every user (admin token). Exits 8 when an operation failed.`,
		ValidArgsFunction: a.completeUsers(1),
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 || !all && len(args) != 1 {
				return usageError("reconcile: name one USER, or --all")
			}
			return nil
		},
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if !all {
				user, err := checkName("user", args[0])
				if err != nil {
					return err
				}
				var res presence.SwitchResult
				b, err := a.client.call(ctx, http.MethodPost, userPath(user, "reconcile"), nil, &res)
				if err != nil {
					return err
				}
				if a.set.json {
					err = a.printJSON(b)
				} else {
					err = writeSwitch(a.env.Stdout, &res)
				}
				if err == nil && !res.InSync {
					return outOfSync("%s: not every PBX operation succeeded (presenced retries them)", user)
				}
				return err
			}
			var ov overview
			if _, err := a.client.Get(ctx, "/api/v1/users", &ov); err != nil {
				return err
			}
			var entries []reconcileEntry
			var failed []string
			for _, s := range ov.Users {
				user := string(s.User)
				var res presence.SwitchResult
				b, err := a.client.call(ctx, http.MethodPost, userPath(user, "reconcile"), nil, &res)
				e := reconcileEntry{User: user, Result: b}
				switch {
				case err != nil:
					var ce *ConnError
					if errors.As(err, &ce) {
						return err // nobody else will be reached either
					}
					e.Error = err.Error()
					failed = append(failed, user)
				case !res.InSync:
					failed = append(failed, user)
				}
				entries = append(entries, e)
				if !a.set.json {
					if err := writeReconcileLine(a.env.Stdout, user, &res, err); err != nil {
						return err
					}
				}
			}
			if a.set.json {
				if err := a.printValue(entries); err != nil {
					return err
				}
			}
			if len(failed) > 0 {
				return outOfSync("not in sync after the reconcile: %s", strings.Join(failed, ", "))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "every user (admin token)")
	return cmd
}

func (a *app) profilesCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "profiles [USER]",
		Short:             "A user's profiles: system-wide and personal",
		Args:              argCount(0, 1),
		ValidArgsFunction: a.completeUsers(1),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			user, err := a.userArg(args)
			if err != nil {
				return err
			}
			var pl profileList
			b, err := a.client.Get(ctx, userPath(user, "profiles"), &pl)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			return writeProfiles(a.env.Stdout, pl.Profiles)
		}),
	}
}

func (a *app) triggerCmd() *cobra.Command {
	var profile string
	cmd := &cobra.Command{
		Use:   "trigger USER NAME start|end",
		Short: "Start or end an external trigger (a calendar, a meeting tool)",
		Long: `trigger starts (with --profile) or ends the external trigger NAME of USER, as a calendar
or a meeting tool would: when it ends, the user returns to the profile they had before. A
second start, or an end without a start, changes nothing.`,
		Example: `  presencectl trigger alice zoom start --profile meeting
  presencectl trigger alice zoom end`,
		Args:              argCount(3, 3),
		ValidArgsFunction: a.completeUsers(1),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			user, err := checkName("user", args[0])
			if err != nil {
				return err
			}
			name, err := checkName("trigger", args[1])
			if err != nil {
				return err
			}
			state := args[2]
			switch {
			case state != "start" && state != "end":
				return usageError("trigger: %q is not start or end", state)
			case state == "start" && profile == "":
				return usageError("trigger: start needs --profile")
			case state == "end" && profile != "":
				return usageError("trigger: end takes no --profile")
			}
			body := map[string]string{"state": state}
			if profile != "" {
				body["profile"] = profile
			}
			var res triggerResult
			b, err := a.client.call(ctx, http.MethodPost, userPath(user, "triggers", name), body, &res)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			return writeTrigger(a.env.Stdout, user, &res)
		}),
	}
	cmd.Flags().StringVar(&profile, "profile", "", "the profile the trigger switches to (start)")
	return cmd
}

func (a *app) instanceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "instance",
		Short: "The health of the presenced instance that answers: its role, the leader, readiness",
		Long: `instance shows the presenced instance --url reaches: its id and version, whether it leads
(writes to Asterisk) or stands by, the leader it knows of, and its readiness checks (AMI, ARI,
the state store), as the web app's admin page does. Behind a load balancer, name each
instance's own address. Exits 0 when the instance is ready, 7 when it is not (the output says
why). Needs the admin token.`,
		Args: argCount(0, 0),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var in instance
			b, err := a.client.Get(ctx, "/api/v1/instance", &in)
			if err != nil {
				return err
			}
			if a.set.json {
				err = a.printJSON(b)
			} else {
				err = writeInstance(a.env.Stdout, &in)
			}
			if err == nil && !in.Ready {
				return &exitError{code: ExitUnavailable, err: fmt.Errorf("presenced instance %s is not ready", in.ID)}
			}
			return err
		}),
	}
}

// reloadPath is presenced's endpoint that reloads the configuration.
const reloadPath = "/-/reload"

func (a *app) reloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make presenced read its configuration again",
		Long: `reload asks presenced to read its configuration file again (POST /-/reload, as SIGHUP
does): the new configuration is checked whole and applied, or refused with the old one kept.
A presenced without the reload endpoint answers 404 (exit 5): restart it instead.`,
		Args: argCount(0, 0),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			b, err := a.client.Do(ctx, http.MethodPost, reloadPath, nil)
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return &exitError{code: ExitNotFound, err: fmt.Errorf("this presenced has no reload endpoint (POST %s answered 404): it is older than configuration reloads; restart it to read its configuration", reloadPath)}
			}
			if err != nil {
				return err
			}
			if a.set.json {
				if len(bytes.TrimSpace(b)) == 0 {
					b = []byte(`{}`)
				}
				return a.printJSON(b)
			}
			return writeReload(a.env.Stdout, b)
		}),
	}
}

func (a *app) passwdCmd() *cobra.Command {
	var ttl string
	cmd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Make a one-time set-password link for a user of the web app (admin token)",
		Long: `passwd makes a one-time link with which USER sets their web app password (and which
lifts a sign-in lockout), as the admin page does, and prints it on presenced's address. Give
it to the user; it works once, until it expires.`,
		Args:              argCount(1, 1),
		ValidArgsFunction: a.completeUsers(1),
		RunE: a.run(func(ctx context.Context, _ *cobra.Command, args []string) error {
			user, err := checkName("user", args[0])
			if err != nil {
				return err
			}
			var body any
			if ttl != "" {
				body = map[string]string{"ttl": ttl}
			}
			var pl passwordLink
			b, err := a.client.call(ctx, http.MethodPost, userPath(user, "password-link"), body, &pl)
			if err != nil {
				return err
			}
			if a.set.json {
				return a.printJSON(b)
			}
			link, err := linkURL(a.client.Base, pl.Path)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.env.Stdout, "%s\n(for %s, once, until %s)\n", link, pl.User, when(pl.Expires))
			return err
		}),
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the link works (e.g. 24h; default presenced's)")
	return cmd
}

// linkURL is the set-password path on presenced's address (after its path, if any).
func linkURL(base *url.URL, path string) (string, error) {
	ref, err := url.Parse(path)
	if err != nil || ref.IsAbs() || !strings.HasPrefix(ref.Path, "/") {
		return "", fmt.Errorf("presenced answered a link path presencectl does not understand: %q", path)
	}
	u := base.JoinPath(ref.Path) // under the base's path too, for a presenced behind a path prefix
	u.RawQuery = ref.RawQuery
	return u.String(), nil
}

// completeUsers completes the first n arguments with the users presenced knows.
func (a *app) completeUsers(n int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n || a.setup() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var pl presenceList
		if _, err := a.client.Get(cmd.Context(), "/api/v1/presence", &pl); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, u := range pl.Users {
			out = append(out, cobra.CompletionWithDesc(string(u.User), u.Name))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeUserProfile completes USER, then that user's PROFILE.
func (a *app) completeUserProfile() cobra.CompletionFunc {
	users := a.completeUsers(1)
	return func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != 1 {
			return users(cmd, args, prefix)
		}
		if a.setup() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var pl profileList
		if _, err := a.client.Get(cmd.Context(), userPath(args[0], "profiles"), &pl); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, p := range pl.Profiles {
			out = append(out, cobra.CompletionWithDesc(p.ID, p.Name))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
