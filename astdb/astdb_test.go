package astdb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// tricky survives astdb and globals unchanged: '%', ':', commas, quotes, backslashes,
// parentheses, trailing blanks and non-ASCII text.
const tricky = `50%done: a,b,c %s %d "q" 'a' (p) [b] \ é ?  `

func TestNew(t *testing.T) {
	c := env.AMI(t, false, nil)
	tests := []struct {
		name      string
		o         astdb.Options
		errSubstr string
	}{
		{"ok", astdb.Options{AMI: c}, ""},
		{"no AMI", astdb.Options{}, "Options.AMI is required"},
		{"negative MaxInFlight", astdb.Options{AMI: c, MaxInFlight: -1}, "Options.MaxInFlight must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, err := astdb.New(tt.o)
			if tt.errSubstr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if fm.Name() != "followme" || !slices.Equal(fm.Kinds(), []presence.OpKind{presence.OpDBPut, presence.OpDBDel, presence.OpGlobal}) {
					t.Errorf("Name %q Kinds %v", fm.Name(), fm.Kinds())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("New: %v, want %q", err, tt.errSubstr)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	fm, _ := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	fam := lab.Unique("PD")
	other := strings.ToLower(fam) + "x" // a family LIKE-matching nothing wanted
	glob := lab.Unique("PDG")
	t.Cleanup(func() {
		_ = check.DBDelTree(context.Background(), fam, "")
		_ = check.DBDelTree(context.Background(), strings.ToLower(fam), "")
		_ = check.Setvar(context.Background(), "", glob, "")
	})

	seed := map[string]string{
		fam + "/9201":                       "YES",
		fam + "/9201/dialstring":            "PJSIP/9201&PJSIP/9201-mobile",
		fam + "/9201/tricky":                tricky,
		fam + "/92011":                      "longer extension",
		fam + "/9202/empty":                 "",
		strings.ToLower(fam) + "/9201/case": "other spelling of the family",
	}
	for k, v := range seed {
		f, key, _ := strings.Cut(k, "/")
		if err := check.DBPut(ctx, f, key, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := check.Setvar(ctx, "", glob, tricky); err != nil {
		t.Fatal(err)
	}

	want := map[presence.UserID]*presence.Target{
		"u1": {AstDB: map[string]*string{
			fam + "/9201":            ptr("YES"),
			fam + "/9201/dialstring": ptr("PJSIP/9201"),
			fam + "/9201/tricky":     ptr(tricky),
			fam + "/9201/absent":     ptr("x"),
			fam + "/9201/case":       nil,
			"nofamily":               ptr("x"),
			other + "/9201":          nil,
		}, Globals: map[string]*string{glob: nil, glob + "unset": ptr("x")}},
		"u2": {AstDB: map[string]*string{
			fam + "/9202/empty": nil,
			fam + "/9202":       nil,
		}, Globals: map[string]*string{glob: ptr(tricky)}},
		"u3": {}, // wants nothing from this concern
	}
	wantHave := map[presence.UserID]map[string]*string{
		"u1": {
			fam + "/9201":              ptr("YES"),
			fam + "/9201/dialstring":   ptr("PJSIP/9201&PJSIP/9201-mobile"),
			fam + "/9201/tricky":       ptr(tricky),
			fam + "/9201/absent":       nil,
			fam + "/9201/case":         nil, // only in the other spelling of the family
			"nofamily":                 nil,
			other + "/9201":            nil,
			"global:" + glob:           ptr(tricky),
			"global:" + glob + "unset": nil,
		},
		"u2": {
			fam + "/9202/empty": ptr(""),
			fam + "/9202":       nil,
			"global:" + glob:    ptr(tricky),
		},
		"u3": {},
	}

	have := map[presence.UserID]*presence.Target{}
	for u := range want {
		have[u] = presence.NewTarget()
	}
	if err := fm.Observe(ctx, want, have); err != nil {
		t.Fatal(err)
	}
	for u, keys := range wantHave {
		got := map[string]*string{}
		for k, v := range have[u].AstDB {
			got[k] = v
		}
		for k, v := range have[u].Globals {
			got["global:"+k] = v
		}
		if len(got) != len(keys) {
			t.Errorf("%s: observed %d entries, want %d", u, len(got), len(keys))
		}
		for k, w := range keys {
			g, ok := got[k]
			if !ok || lab.Show(g) != lab.Show(w) {
				t.Errorf("%s: %s observed %s (present %v), want %s", u, k, lab.Show(g), ok, lab.Show(w))
			}
		}
		// What was observed agrees with the PBX read independently.
		for k, v := range have[u].AstDB {
			if !strings.Contains(k, "/") {
				continue
			}
			if pbx := lab.DBGet(t, check, k); lab.Show(pbx) != lab.Show(v) {
				t.Errorf("%s: observed %s, the PBX holds %s", k, lab.Show(v), lab.Show(pbx))
			}
		}
	}

	// The plan of u1 fixes exactly what differs.
	ops := presence.Plan(&presence.Desired{Target: *want["u1"]}, have["u1"])
	var got []string
	for _, op := range ops {
		got = append(got, op.String())
	}
	wantOps := []string{
		fmt.Sprintf("db_put %s/9201/absent=\"x\"", fam),
		fmt.Sprintf("db_put %s/9201/dialstring=\"PJSIP/9201\"", fam),
		"db_put nofamily=\"x\"",
		fmt.Sprintf("global %s=\"\"", glob),
		fmt.Sprintf("global %sunset=\"x\"", glob),
	}
	if !slices.Equal(got, wantOps) {
		t.Errorf("plan\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantOps, "\n"))
	}

	if err := fm.Observe(ctx, want, map[presence.UserID]*presence.Target{}); err == nil || !strings.Contains(err.Error(), "no observed target") {
		t.Errorf("Observe without have targets: %v", err)
	}
}

func TestApply(t *testing.T) {
	fm, reg := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	fam := lab.Unique("PD")
	glob := lab.Unique("PDG")
	t.Cleanup(func() {
		_ = check.DBDelTree(context.Background(), fam, "")
		_ = check.Setvar(context.Background(), "", glob, "")
		_ = check.Setvar(context.Background(), "", glob+"b", "")
		_ = check.Setvar(context.Background(), "", glob+"c", "")
	})
	if err := check.DBPut(ctx, fam, "9203/old", "old value"); err != nil {
		t.Fatal(err)
	}
	if err := check.DBPut(ctx, fam, "9203/gone", "to be deleted"); err != nil {
		t.Fatal(err)
	}
	if err := check.Setvar(ctx, "", glob+"b", "to be cleared"); err != nil {
		t.Fatal(err)
	}
	u := &presence.User{ID: "apply", Extension: "9203"}

	tests := []struct {
		name      string
		op        presence.Op
		want      presence.Result
		errSubstr string
		check     string  // astdb key, or "global:NAME", read back from the PBX afterwards
		after     *string // its value there (nil: absent/unset)
	}{
		{"put", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203", Value: "YES"}, presence.ResultApplied, "", fam + "/9203", ptr("YES")},
		{"put tricky value", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/callerid", Value: tricky}, presence.ResultApplied, "", fam + "/9203/callerid", ptr(tricky)},
		{"overwrite", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/old", Value: "new value"}, presence.ResultApplied, "", fam + "/9203/old", ptr("new value")},
		{"put empty", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/empty", Value: ""}, presence.ResultApplied, "", fam + "/9203/empty", ptr("")},
		{"del", presence.Op{Kind: presence.OpDBDel, Key: fam + "/9203/gone"}, presence.ResultApplied, "", fam + "/9203/gone", nil},
		{"del missing", presence.Op{Kind: presence.OpDBDel, Key: fam + "/9203/never"}, presence.ResultUnchanged, "", fam + "/9203/never", nil},
		{"put bad key", presence.Op{Kind: presence.OpDBPut, Key: "nofamily", Value: "x"}, presence.ResultFailed, `db put "nofamily": key must be FAMILY/key`, "", nil},
		{"del bad key", presence.Op{Kind: presence.OpDBDel, Key: fam + "/"}, presence.ResultFailed, "key must be FAMILY/key", "", nil},
		{"put leading blank", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/lead", Value: "  x"}, presence.ResultFailed, "starts with blanks, which AMI strips", fam + "/9203/lead", nil},
		{"put too long", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/long", Value: strings.Repeat("v", 1100)}, presence.ResultFailed, "db put " + fam + "/9203/long: ami: invalid header", fam + "/9203/long", nil},
		// presence.MaxAstDBValue and MaxGlobalValue, which validation holds values to, are
		// exactly what the PBX takes.
		{"put longest value", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/longest", Value: strings.Repeat("v", presence.MaxAstDBValue)}, presence.ResultApplied, "", fam + "/9203/longest", ptr(strings.Repeat("v", presence.MaxAstDBValue))},
		{"put one byte more", presence.Op{Kind: presence.OpDBPut, Key: fam + "/9203/longer", Value: strings.Repeat("v", presence.MaxAstDBValue+1)}, presence.ResultFailed, "Asterisk accepts at most 1022", fam + "/9203/longer", nil},
		{"global longest value", presence.Op{Kind: presence.OpGlobal, Key: glob + "c", Value: strings.Repeat("g", presence.MaxGlobalValue)}, presence.ResultApplied, "", "global:" + glob + "c", ptr(strings.Repeat("g", presence.MaxGlobalValue))},
		{"global one byte more", presence.Op{Kind: presence.OpGlobal, Key: glob + "c", Value: strings.Repeat("g", presence.MaxGlobalValue+1)}, presence.ResultFailed, "Asterisk accepts at most 1022", "global:" + glob + "c", ptr(strings.Repeat("g", presence.MaxGlobalValue))},
		{"global set", presence.Op{Kind: presence.OpGlobal, Key: glob, Value: tricky}, presence.ResultApplied, "", "global:" + glob, ptr(tricky)},
		{"global clear", presence.Op{Kind: presence.OpGlobal, Key: glob + "b", Value: ""}, presence.ResultApplied, "", "global:" + glob + "b", nil},
		{"global function name", presence.Op{Kind: presence.OpGlobal, Key: "DB(" + fam + "/x)", Value: "x"}, presence.ResultFailed, "not a variable name", "", nil},
		{"other kind", presence.Op{Kind: presence.OpDeviceState, Key: "Custom:X", Value: "BUSY"}, presence.ResultFailed, "followme: cannot apply device_state operations", "", nil},
	}
	// One Apply with every operation: outcomes come back one per operation, in order.
	ops := make([]presence.Op, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	out := fm.Apply(ctx, u, ops)
	if len(out) != len(ops) {
		t.Fatalf("%d outcomes for %d operations", len(out), len(ops))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := out[i]
			if o.Op.Kind != tt.op.Kind || o.Op.Key != tt.op.Key {
				t.Errorf("outcome %d is for %v, want %v", i, o.Op, tt.op)
			}
			if o.Result != tt.want || !strings.Contains(o.Error, tt.errSubstr) || (tt.errSubstr == "") != (o.Error == "") {
				t.Errorf("outcome %s %q, want %s with %q", o.Result, o.Error, tt.want, tt.errSubstr)
			}
			if tt.check == "" {
				return
			}
			var got *string
			if name, ok := strings.CutPrefix(tt.check, "global:"); ok {
				if v := lab.Getvar(t, check, name); v != "" {
					got = &v
				}
			} else {
				got = lab.DBGet(t, check, tt.check)
			}
			if lab.Show(got) != lab.Show(tt.after) {
				t.Errorf("the PBX holds %s = %s, want %s", tt.check, lab.Show(got), lab.Show(tt.after))
			}
		})
	}

	// The ops counter saw each outcome.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "presenced_followme_ops_total" {
			for _, m := range mf.GetMetric() {
				key := ""
				for _, l := range m.GetLabel() {
					key += l.GetValue() + "/"
				}
				counts[key] = m.GetCounter().GetValue()
			}
		}
	}
	for key, n := range map[string]float64{"db_put/applied/": 5, "db_put/failed/": 4, "db_del/applied/": 1, "db_del/unchanged/": 1,
		"db_del/failed/": 1, "global/applied/": 3, "global/failed/": 2, "other/failed/": 1} {
		if counts[key] != n {
			t.Errorf("presenced_followme_ops_total{%s} = %v, want %v", key, counts[key], n)
		}
	}
}

func TestApplyCancelled(t *testing.T) {
	fm, reg := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	fam := lab.Unique("PD")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := lab.ActionCount(t, reg, "DBPut")
	out := fm.Apply(ctx, &presence.User{ID: "x"}, []presence.Op{
		{Kind: presence.OpDBPut, Key: fam + "/a", Value: "1"},
		{Kind: presence.OpDBDel, Key: fam + "/b"},
		{Kind: presence.OpGlobal, Key: fam, Value: "1"},
	})
	for i, o := range out {
		if o.Result != presence.ResultFailed || !strings.Contains(o.Error, "context canceled") {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
	if n := lab.ActionCount(t, reg, "DBPut") - before; n != 0 {
		t.Errorf("%d DBPut sent after ctx was done", n)
	}
	if v := lab.DBGet(t, check, fam+"/a"); v != nil {
		t.Errorf("%s/a = %s", fam, *v)
	}
}

// TestObserveCost checks what observing costs: a small batch reads each user's subtrees (one
// DBGetTree per user and family), a larger one one DBGetTree per family whatever the number of
// users; always one Getvar per distinct global.
func TestObserveCost(t *testing.T) {
	fm, reg := newConcern(t, 0)
	ctx := lab.Context(t)
	fam := lab.Unique("PD")
	glob := lab.Unique("PDG")
	// The families Compile uses for every user, plus one of this test's own.
	families := []string{"DND", "CF", "PROFILE", fam}

	for _, users := range []int{1, astdb.DefaultSmallBatch, astdb.DefaultSmallBatch + 1, 300} {
		want := map[presence.UserID]*presence.Target{}
		have := map[presence.UserID]*presence.Target{}
		for i := range users {
			ext := fmt.Sprint(93000 + i)
			w := presence.NewTarget()
			w.AstDB["DND/"+ext] = ptr("YES")
			w.AstDB["CF/"+ext] = nil
			w.AstDB["PROFILE/"+ext+"/active"] = ptr("meeting")
			w.AstDB["PROFILE/"+ext+"/dialstring"] = ptr("PJSIP/" + ext)
			w.AstDB[fam+"/"+ext] = ptr("x")
			w.Globals[glob] = ptr("shared by all users")
			id := presence.UserID("cost" + ext)
			want[id], have[id] = w, presence.NewTarget()
		}
		trees, getvars := lab.ActionCount(t, reg, "DBGetTree"), lab.ActionCount(t, reg, "Getvar")
		if err := fm.Observe(ctx, want, have); err != nil {
			t.Fatal(err)
		}
		wantTrees := len(families) // one per family
		if users <= astdb.DefaultSmallBatch {
			wantTrees = len(families) * users // one per user subtree
		}
		if n := lab.ActionCount(t, reg, "DBGetTree") - trees; n != wantTrees {
			t.Errorf("%d users: %d DBGetTree, want %d", users, n, wantTrees)
		}
		if n := lab.ActionCount(t, reg, "Getvar") - getvars; n != 1 {
			t.Errorf("%d users: %d Getvar, want 1 (one per distinct global)", users, n)
		}
		for id, h := range have {
			if len(h.AstDB) != 5 || len(h.Globals) != 1 {
				t.Fatalf("%s: observed %d keys and %d globals", id, len(h.AstDB), len(h.Globals))
			}
		}
	}
}

// TestApplyConcurrentUsers applies for many users at once over one shared client, with a
// small in-flight bound, and reads the result back from the PBX.
func TestApplyConcurrentUsers(t *testing.T) {
	fm, _ := newConcern(t, 4)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	fam := lab.Unique("PD")
	t.Cleanup(func() { _ = check.DBDelTree(context.Background(), fam, "") })

	const users = 100
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			ext := fmt.Sprint(9400 + i)
			ops := []presence.Op{
				{Kind: presence.OpDBPut, Key: fam + "/" + ext + "/a", Value: "a" + ext},
				{Kind: presence.OpDBPut, Key: fam + "/" + ext + "/b", Value: "b, " + ext},
				{Kind: presence.OpDBDel, Key: fam + "/" + ext + "/a"},
				{Kind: presence.OpDBDel, Key: fam + "/" + ext + "/a"},
			}
			out := fm.Apply(ctx, &presence.User{ID: presence.UserID("c" + ext), Extension: ext}, ops)
			want := []presence.Result{presence.ResultApplied, presence.ResultApplied, presence.ResultApplied, presence.ResultUnchanged}
			if !slices.Equal(presencetest.Results(out), want) {
				t.Errorf("user %s: %v", ext, out)
			}
		})
	}
	wg.Wait()

	entries, err := check.DBGetTree(ctx, fam, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Key] = e.Value
	}
	if len(got) != users {
		t.Errorf("%d entries in %s, want %d", len(got), fam, users)
	}
	for i := range users {
		ext := fmt.Sprint(9400 + i)
		if v := got["/"+fam+"/"+ext+"/b"]; v != "b, "+ext {
			t.Errorf("%s/%s/b = %q", fam, ext, v)
		}
	}
}

// TestSurvey: a full check's survey reads the whole families and globals the last full check
// wanted; its Fill reads only what the survey did not (a family wanted since) and records
// what Observe would.
func TestSurvey(t *testing.T) {
	fm, reg := newConcern(t, 0)
	ctx := lab.Context(t)
	fam, later := lab.Unique("SV"), lab.Unique("SVL")
	glob := lab.Unique("SVG")
	want := map[presence.UserID]*presence.Target{}
	for i := range 300 {
		ext := fmt.Sprint(95000 + i)
		w := presence.NewTarget()
		w.AstDB["PROFILE/"+ext+"/active"] = ptr("meeting")
		w.AstDB[fam+"/"+ext] = ptr("x")
		w.Globals[glob] = ptr("g")
		want[presence.UserID("survey"+ext)] = w
	}
	fresh := func() map[presence.UserID]*presence.Target {
		have := map[presence.UserID]*presence.Target{}
		for id := range want {
			have[id] = presence.NewTarget()
		}
		return have
	}
	reads := func() int { return lab.ActionCount(t, reg, "DBGetTree") + lab.ActionCount(t, reg, "Getvar") }
	for _, tc := range []struct {
		name                   string
		addFamily              bool
		surveyReads, fillReads int
	}{
		{"first: nothing known, Fill reads", false, 0, 3},
		{"then: the survey reads, Fill nothing", false, 3, 0},
		{"a family wanted since: Fill reads it", true, 3, 1},
	} {
		if tc.addFamily {
			for id, w := range want {
				w.AstDB[later+"/"+string(id)] = nil
			}
		}
		byObserve := fresh()
		if err := fm.Observe(ctx, want, byObserve); err != nil {
			t.Fatal(err)
		}
		before := reads()
		s, err := fm.Survey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := reads() - before; n != tc.surveyReads {
			t.Errorf("%s: the survey sent %d reads, want %d", tc.name, n, tc.surveyReads)
		}
		before = reads()
		have := fresh()
		if err := s.Fill(ctx, want, have); err != nil {
			t.Fatal(err)
		}
		if n := reads() - before; n != tc.fillReads {
			t.Errorf("%s: Fill sent %d reads, want %d", tc.name, n, tc.fillReads)
		}
		for id, h := range byObserve {
			for k, v := range h.AstDB {
				g, ok := have[id].AstDB[k]
				if !ok || (v == nil) != (g == nil) || (v != nil && *v != *g) {
					t.Fatalf("%s: %s: %s: Fill recorded %v, Observe %v", tc.name, id, k, g, v)
				}
			}
			if len(h.Globals) != len(have[id].Globals) {
				t.Fatalf("%s: %s: Fill recorded globals %v, Observe %v", tc.name, id, have[id].Globals, h.Globals)
			}
		}
	}
}

// TestChangesOverWriter: with Options.Writer the changes go over that client, the reads over
// Reader, and none over AMI (the session that carries the events).
func TestChangesOverWriter(t *testing.T) {
	events, _ := env.DaemonAMI(t)
	writer, _ := env.DaemonAMI(t)
	reader, _ := env.DaemonAMI(t)
	con, err := astdb.New(astdb.Options{AMI: events, Writer: writer, Reader: reader, Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	fam := lab.Unique("PDW")
	t.Cleanup(func() { _ = check.DBDelTree(context.Background(), fam, "") })
	u := &presence.User{ID: "writer", Extension: "9204"}
	key := fam + "/9204"
	e0, w0, r0 := events.ActionsSent(), writer.ActionsSent(), reader.ActionsSent()

	out := con.Apply(ctx, u, []presence.Op{{Kind: presence.OpDBPut, Key: key, Value: "YES"}})
	if len(out) != 1 || out[0].Result != presence.ResultApplied {
		t.Fatalf("apply: %+v", out)
	}
	want := map[presence.UserID]*presence.Target{u.ID: {AstDB: map[string]*string{key: nil}}}
	have := map[presence.UserID]*presence.Target{u.ID: presence.NewTarget()}
	if err := con.Observe(ctx, want, have); err != nil {
		t.Fatal(err)
	}
	if v := have[u.ID].AstDB[key]; v == nil || *v != "YES" {
		t.Errorf("observed %s = %v, want YES", key, v)
	}
	if got, err := check.DBGet(ctx, fam, "9204"); err != nil || got != "YES" {
		t.Errorf("PBX holds %s = %q, %v; want YES", key, got, err)
	}
	if n := writer.ActionsSent() - w0; n != 1 {
		t.Errorf("%d actions over Writer, want the one change", n)
	}
	if n := reader.ActionsSent() - r0; n < 1 {
		t.Errorf("%d actions over Reader, want the read", n)
	}
	if n := events.ActionsSent() - e0; n != 0 {
		t.Errorf("%d actions over AMI, the events session; want none", n)
	}
}
