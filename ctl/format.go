package ctl

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/presenced/presenced/presence"
)

// when is a time in the reader's zone; "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// ago says how long ago t was, roughly: "45s", "12m", "3h05m", "2d4h".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// cell makes a text safe for one table cell: control characters (a tab would break the
// columns, an escape sequence the terminal) become spaces, and a long text is cut.
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// text makes a text safe for a line of its own: no control characters.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// ew writes and keeps the first error, so that a formatter can check once at the end.
type ew struct {
	w   *bufio.Writer
	err error
}

func newEW(w io.Writer) *ew { return &ew{w: bufio.NewWriter(w)} }

func (e *ew) f(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (e *ew) done() error {
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// table writes aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// writeStatus writes a user's status: profile and why, then whether the PBX matches.
func writeStatus(w io.Writer, st *userStatus) error {
	e := newEW(w)
	who := "?"
	if st.User != nil {
		who = st.User.ID
		if st.User.Name != "" || st.User.Extension != "" {
			who += " (" + strings.TrimSpace(st.User.Name+" "+st.User.Extension) + ")"
		}
	}
	e.f("%s\n", text(who))
	if !st.Switched {
		e.f("  profile:   none yet (presenced has not switched this user)\n")
	} else {
		p := st.Profile
		if st.Sticky {
			p += " (sticky)"
		}
		e.f("  profile:   %s\n", text(p))
		if st.Info != "" {
			e.f("  info:      %s\n", text(st.Info))
		}
		by := st.Source
		if st.Actor != "" {
			by += ", by " + st.Actor
		}
		e.f("  since:     %s (%s)\n", when(st.Since), text(by))
		if st.Previous != "" {
			e.f("  previous:  %s\n", text(st.Previous))
		}
	}
	if st.Until != nil {
		e.f("  until:     %s\n", when(*st.Until))
	}
	if st.Trigger != "" {
		e.f("  trigger:   %s (%d active)\n", text(st.Trigger), len(st.ActiveTriggers))
	}
	if st.ReturnsTo != "" {
		e.f("  returns to: %s\n", text(st.ReturnsTo))
	}
	if n := st.NextChange; n != nil {
		e.f("  next:      %s at %s (%s, %s)\n", text(n.Profile), when(n.At), text(n.Trigger), n.Kind)
	}
	if st.OnCall != "" {
		e.f("  on call:   %s\n", text(st.OnCall))
	}
	switch {
	case st.ObserveError != "":
		e.f("  PBX:       cannot be read: %s\n", text(st.ObserveError))
	case st.InSync && len(st.Pending) == 0:
		e.f("  PBX:       in sync\n")
	default:
		e.f("  PBX:       NOT in sync\n")
	}
	for _, d := range st.Differences {
		e.f("    - %s [%s]\n", text(d.String()), d.Policy)
	}
	for _, op := range st.Pending {
		e.f("    - waiting for the call to end: %s\n", text(op.String()))
	}
	if st.RepairDue != nil {
		e.f("    next repair attempt %d at %s\n", st.RepairAttempt, when(*st.RepairDue))
	}
	for _, wn := range st.Warnings {
		e.f("  warning:   %s\n", text(wn.Message))
	}
	return e.done()
}

// writeWho writes everyone's presence as a table.
func writeWho(w io.Writer, users []presence.PresenceEntry, now time.Time) error {
	rows := make([][]string, 0, len(users))
	for _, u := range users {
		profile := u.Label
		if profile == "" {
			profile = u.Profile
		}
		if u.Private {
			profile += " (private)"
		}
		call := ""
		if u.OnCall {
			call = "on call"
		}
		rows = append(rows, []string{cell(string(u.User), 24), cell(u.Extension, 12), cell(u.Name, 24),
			cell(profile, 32), cell(u.Presence, 12), cell(u.Info, 40), ago(u.Since, now), cell(call, 8)})
	}
	return table(w, []string{"USER", "EXT", "NAME", "PROFILE", "PRESENCE", "INFO", "SINCE", "CALL"}, rows)
}

// counts sums up outcomes by result: "2 applied, 3 unchanged, 1 failed"; "nothing to do".
func counts(outcomes []presence.Outcome) string {
	if len(outcomes) == 0 {
		return "nothing to do"
	}
	order := []presence.Result{presence.ResultApplied, presence.ResultUnchanged, presence.ResultPlanned,
		presence.ResultFailed, presence.ResultReported, presence.ResultAdopted, presence.ResultDeferred, presence.ResultSwitching}
	n := map[presence.Result]int{}
	for _, o := range outcomes {
		n[o.Result]++
	}
	var parts []string
	for _, r := range order {
		if n[r] > 0 {
			parts = append(parts, strconv.Itoa(n[r])+" "+string(r))
			delete(n, r)
		}
	}
	for r, c := range n { // a result this presencectl does not know
		parts = append(parts, strconv.Itoa(c)+" "+string(r))
	}
	return strings.Join(parts, ", ")
}

// writeOutcomes writes one line per operation.
func writeOutcomes(e *ew, outcomes []presence.Outcome) {
	for _, o := range outcomes {
		line := fmt.Sprintf("    %-9s %s", o.Result, o.Op.String())
		if o.Error != "" {
			line += ": " + o.Error
		}
		if o.Note != "" {
			line += " (" + o.Note + ")"
		}
		e.f("%s\n", text(line))
	}
}

// writeSwitch writes a switch's, preview's or reconcile's result.
func writeSwitch(w io.Writer, r *presence.SwitchResult) error {
	e := newEW(w)
	verb := "switched"
	if r.Preview {
		verb = "would switch"
	}
	from := r.From
	if from == "" {
		from = "(none)"
	}
	if r.From == r.To && !r.Preview {
		verb = "kept"
		e.f("%s: %s %s: %s\n", text(string(r.User)), verb, text(r.To), counts(r.Outcomes))
	} else {
		e.f("%s: %s %s → %s: %s\n", text(string(r.User)), verb, text(from), text(r.To), counts(r.Outcomes))
	}
	writeOutcomes(e, r.Outcomes)
	if !r.InSync && !r.Preview {
		e.f("  NOT in sync: presenced retries what failed\n")
	}
	return e.done()
}

// writeReconcileLine writes one user of reconcile --all.
func writeReconcileLine(w io.Writer, user string, r *presence.SwitchResult, err error) error {
	var line string
	switch {
	case err != nil:
		line = fmt.Sprintf("%s: %v", user, err)
	case r.InSync:
		line = fmt.Sprintf("%s: in sync (%s)", user, counts(r.Outcomes))
	default:
		line = fmt.Sprintf("%s: NOT in sync (%s)", user, counts(r.Outcomes))
	}
	_, werr := fmt.Fprintln(w, text(line))
	return werr
}

// writeJournal writes journal entries, each with the operations that did something.
func writeJournal(w io.Writer, entries []presence.JournalEntry, unreadable []string) error {
	e := newEW(w)
	if len(entries) == 0 {
		e.f("no entries\n")
	}
	for _, j := range entries {
		from := j.From
		if from == "" {
			from = "(none)"
		}
		what := from + " → " + j.To
		if j.Kind != presence.JournalSwitch {
			what = j.To
		}
		by := string(j.Source)
		if j.Actor != "" {
			by += " by " + j.Actor
		}
		sync := ""
		if !j.InSync {
			sync = ", NOT in sync"
		}
		line := fmt.Sprintf("%s  %-9s %s (%s): %s%s", when(j.At), j.Kind, what, by, counts(j.Outcomes), sync)
		if j.Info != "" {
			line += fmt.Sprintf(" — %q", j.Info)
		}
		if j.SupersededBy != 0 {
			line += fmt.Sprintf(" (superseded by version %d)", j.SupersededBy)
		}
		e.f("%s\n", text(line))
		var notable []presence.Outcome
		for _, o := range j.Outcomes {
			if o.Result != presence.ResultUnchanged {
				notable = append(notable, o)
			}
		}
		writeOutcomes(e, notable)
	}
	for _, u := range unreadable {
		e.f("unreadable: %s\n", text(u))
	}
	return e.done()
}

// writeDrift writes everyone out of sync with the differences in words.
func writeDrift(w io.Writer, users []presence.UserSummary, statuses []*userStatus) error {
	e := newEW(w)
	if len(users) == 0 {
		e.f("everyone is in sync\n")
		return e.done()
	}
	for i, s := range users {
		var parts []string
		if s.Reported > 0 {
			parts = append(parts, fmt.Sprintf("%d reported", s.Reported))
		}
		if s.Failed > 0 {
			parts = append(parts, fmt.Sprintf("%d failed", s.Failed))
		}
		if s.Deferred > 0 {
			parts = append(parts, fmt.Sprintf("%d waiting for a call to end", s.Deferred))
		}
		if len(parts) == 0 {
			parts = append(parts, "out of sync")
		}
		e.f("%s (%s), profile %s: %s\n", text(string(s.User)), text(s.Extension), text(s.Profile), strings.Join(parts, ", "))
		if i >= len(statuses) || statuses[i] == nil {
			continue
		}
		st := statuses[i]
		if st.ObserveError != "" {
			e.f("  - the PBX cannot be read: %s\n", text(st.ObserveError))
		}
		for _, d := range st.Differences {
			e.f("  - %s [%s]\n", text(d.String()), d.Policy)
		}
		for _, op := range st.Pending {
			e.f("  - waiting for the call to end: %s\n", text(op.String()))
		}
		if st.RepairDue != nil {
			e.f("  - next repair attempt %d at %s\n", st.RepairAttempt, when(*st.RepairDue))
		}
	}
	return e.done()
}

// writeProfiles writes a user's profiles as a table.
func writeProfiles(w io.Writer, ps []profileView) error {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		kind := "system"
		if p.Personal {
			kind = "personal"
		}
		flags := []string{}
		if p.Sticky {
			flags = append(flags, "sticky")
		}
		if p.Visibility == "private" {
			flags = append(flags, "private")
		}
		rows = append(rows, []string{cell(p.ID, 24), cell(p.Name, 32), cell(p.Activation, 6), cell(string(p.Presence), 12),
			strconv.Itoa(p.Priority), kind, cell(strings.Join(flags, ","), 16)})
	}
	return table(w, []string{"ID", "NAME", "DIAL", "PRESENCE", "PRIORITY", "KIND", "FLAGS"}, rows)
}

// writeTrigger writes what an external trigger's start or end did.
func writeTrigger(w io.Writer, user string, r *triggerResult) error {
	var line string
	switch {
	case r.Switched:
		line = fmt.Sprintf("%s: trigger %s %s: switched to %s", user, r.Trigger, r.State, r.Profile)
	default:
		line = fmt.Sprintf("%s: trigger %s %s: no switch", user, r.Trigger, r.State)
		if r.Reason != "" {
			line += " (" + r.Reason + ")"
		}
	}
	_, err := fmt.Fprintln(w, text(line))
	return err
}

// writeReload writes what a reload answered: its message (else "reloaded") and warnings.
func writeReload(w io.Writer, body []byte) error {
	var m map[string]any
	lines := []string{"presenced reloaded its configuration"}
	if json.Unmarshal(body, &m) == nil {
		for _, k := range []string{"message", "status", "result"} {
			if s, ok := m[k].(string); ok && s != "" {
				lines[0] = s
				break
			}
		}
		if m["status"] == "ok" {
			lines[0] = "presenced reloaded its configuration"
		}
		for _, f := range []struct{ key, what string }{
			{"users_added", "users added"}, {"users_removed", "users removed"},
			{"users_changed", "users changed"}, {"profiles_changed", "profiles changed"},
		} {
			if xs, ok := m[f.key].([]any); ok && len(xs) > 0 {
				lines = append(lines, f.what+": "+joinAny(xs))
			}
		}
		if m["personal_rules_changed"] == true {
			lines = append(lines, "personal-profile rules changed")
		}
		if xs, ok := m["restart_needed"].([]any); ok && len(xs) > 0 {
			lines = append(lines, "warning: takes effect only after a restart: "+joinAny(xs))
		}
		if warns, ok := m["warnings"].([]any); ok {
			for _, x := range warns {
				if s, ok := x.(string); ok {
					lines = append(lines, "warning: "+s)
				}
			}
		}
	}
	e := newEW(w)
	for _, l := range lines {
		e.f("%s\n", text(l))
	}
	return e.done()
}

// joinAny joins the strings of a JSON list with ", ".
func joinAny(xs []any) string {
	var out []string
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

// writeInstance writes an instance's health: id, version, role, leader, readiness and checks.
func writeInstance(w io.Writer, in *instance) error {
	e := newEW(w)
	e.f("instance:  %s", text(in.ID))
	if in.Version != "" {
		e.f(" (%s)", text(in.Version))
	}
	e.f("\nrole:      %s\n", text(in.Role))
	leader := "none known"
	if in.Leader != "" {
		leader = in.Leader
		if in.LeaderEpoch != 0 {
			leader += fmt.Sprintf(" (epoch %d)", in.LeaderEpoch)
		}
		if in.Leader == in.ID {
			leader += ", this instance"
		}
	}
	if in.LeaderNote != "" {
		leader += ": " + in.LeaderNote
	}
	e.f("leader:    %s\n", text(leader))
	ready := "yes"
	if !in.Ready {
		ready = "no"
	}
	e.f("ready:     %s\n", ready)
	for _, k := range slices.Sorted(maps.Keys(in.Checks)) {
		e.f("  %-8s %s\n", text(k)+":", text(in.Checks[k]))
	}
	return e.done()
}
