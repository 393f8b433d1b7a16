package blf_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

func TestNew(t *testing.T) {
	c := env.AMI(t, false, nil)
	tests := []struct {
		name      string
		o         blf.Options
		errSubstr string
	}{
		{"ok", blf.Options{AMI: c}, ""},
		{"no AMI", blf.Options{}, "Options.AMI is required"},
		{"negative MaxInFlight", blf.Options{AMI: c, MaxInFlight: -1}, "Options.MaxInFlight must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := blf.New(tt.o)
			if tt.errSubstr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b.Name() != "blf" || !slices.Equal(b.Kinds(), []presence.OpKind{presence.OpDeviceState, presence.OpPresence}) {
					t.Errorf("Name %q Kinds %v", b.Name(), b.Kinds())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("New: %v, want %q", err, tt.errSubstr)
			}
		})
	}
}

// waitExtensionState polls the hint exten@hints until its status is want: hint states follow
// device states asynchronously.
func waitExtensionState(t *testing.T, c *ami.Client, exten string, want int) ami.ExtensionStatus {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		es, err := c.ExtensionState(context.Background(), exten, "hints")
		if err != nil {
			t.Fatalf("ExtensionState %s@hints: %v", exten, err)
		}
		if es.Status == want || time.Now().After(deadline) {
			return es
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLamps sets the lab's DND lamp of 1001 and reads it back through the hints phones
// subscribe to: *761001 (the lamp alone) and 1001 (PJSIP/1001, unregistered, & the lamp).
func TestLamps(t *testing.T) {
	b, _ := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	const lamp = "Custom:DND1001"
	// Custom:DND1001 is shared lab state: put it back afterwards. A lamp never set (UNKNOWN)
	// cannot be set back; it gets presenced's "off" state instead.
	orig := lab.Getvar(t, check, "DEVICE_STATE("+lamp+")")
	t.Cleanup(func() {
		restore := orig
		if restore == "UNKNOWN" {
			restore = presence.DefaultNaming().LampOff
		}
		if err := check.Setvar(context.Background(), "", "DEVICE_STATE("+lamp+")", restore); err != nil {
			t.Errorf("restore %s to %s: %v", lamp, restore, err)
		}
	})
	u := &presence.User{ID: "alice", Extension: "1001"}

	tests := []struct {
		value          string // as the plan carries it
		state          string // DEVICE_STATE afterwards
		feature, combo int    // ExtensionState of *761001@hints and 1001@hints
		featureText    string
	}{
		{"BUSY", "BUSY", 2, 2, "Busy"},
		{"INVALID", "INVALID", 4, 4, "Unavailable"},
		{"busy", "BUSY", 2, 2, "Busy"},
		{"NOT_INUSE", "NOT_INUSE", 0, 0, "Idle"}, // masks the offline phone (docs/asterisk.md §4)
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			op := presence.Op{Kind: presence.OpDeviceState, Key: lamp, Value: tt.value}
			out := b.Apply(ctx, u, []presence.Op{op})
			if len(out) != 1 || out[0].Result != presence.ResultApplied {
				t.Fatalf("outcomes %+v", out)
			}
			if got := lab.Getvar(t, check, "DEVICE_STATE("+lamp+")"); got != tt.state {
				t.Errorf("DEVICE_STATE = %q, want %q", got, tt.state)
			}
			if es := waitExtensionState(t, check, "*761001", tt.feature); es.Status != tt.feature || es.StatusText != tt.featureText {
				t.Errorf("*761001@hints = %d %s, want %d %s", es.Status, es.StatusText, tt.feature, tt.featureText)
			}
			if es := waitExtensionState(t, check, "1001", tt.combo); es.Status != tt.combo {
				t.Errorf("1001@hints = %d %s, want %d", es.Status, es.StatusText, tt.combo)
			}

			// Observe agrees, and the plan for the same value (any case) is empty.
			want := map[presence.UserID]*presence.Target{u.ID: {Devices: map[string]string{lamp: tt.value}}}
			have := map[presence.UserID]*presence.Target{u.ID: presence.NewTarget()}
			if err := b.Observe(ctx, want, have); err != nil {
				t.Fatal(err)
			}
			if got := have[u.ID].Devices[lamp]; got != tt.state {
				t.Errorf("observed %s = %q, want %q", lamp, got, tt.state)
			}
			if ops := presence.Plan(&presence.Desired{Target: *want[u.ID]}, have[u.ID]); len(ops) != 0 {
				t.Errorf("plan after apply: %v", ops)
			}
		})
	}
}

func TestObserveDevices(t *testing.T) {
	b, _ := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	set := "Custom:" + lab.Unique("TObserveSet")
	never := "Custom:" + lab.Unique("TObserveNever")
	// astdb keeps the caller's spelling, DeviceStateList reports Asterisk's.
	if err := check.Setvar(ctx, "", "DEVICE_STATE("+set+")", "not_inuse"); err != nil {
		t.Fatal(err)
	}
	if v := lab.DBGet(t, check, "CustomDevstate/"+strings.TrimPrefix(set, "Custom:")); v == nil || *v != "not_inuse" {
		t.Fatalf("CustomDevstate holds %s", lab.Show(v))
	}

	tests := []struct {
		device  string
		want    string // desired
		observe string
		planned bool
	}{
		{set, "NOT_INUSE", "NOT_INUSE", false},
		{set, "not_inuse", "NOT_INUSE", false},
		{set, "BUSY", "NOT_INUSE", true},
		{strings.ToLower(set), "NOT_INUSE", "UNKNOWN", true}, // device names are case-sensitive
		{never, "INVALID", "UNKNOWN", true},
		{"PJSIP/1001", "UNAVAILABLE", "UNAVAILABLE", false}, // any listed device can be observed
	}
	for _, tt := range tests {
		t.Run(tt.device+"="+tt.want, func(t *testing.T) {
			want := map[presence.UserID]*presence.Target{"u": {Devices: map[string]string{tt.device: tt.want}}}
			have := map[presence.UserID]*presence.Target{"u": {}}
			if err := b.Observe(ctx, want, have); err != nil {
				t.Fatal(err)
			}
			if got := have["u"].Devices[tt.device]; got != tt.observe {
				t.Errorf("observed %q, want %q", got, tt.observe)
			}
			if pbx := lab.Getvar(t, check, "DEVICE_STATE("+tt.device+")"); pbx != tt.observe {
				t.Errorf("observed %q, DEVICE_STATE reads %q", tt.observe, pbx)
			}
			if ops := presence.Plan(&presence.Desired{Target: *want["u"]}, have["u"]); (len(ops) > 0) != tt.planned {
				t.Errorf("plan %v, want planned %v", ops, tt.planned)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	b, _ := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("Back soon, ", 23) + "ok" // 255 bytes, the longest Asterisk decodes whole
	raw := strings.Repeat("Back soon. ", 90)         // 990 bytes: long, but written as it is

	tests := []struct {
		name    string
		state   string
		message string
		stored  string // astdb CustomPresence/<name> afterwards
		state2  string // PresenceState's State
	}{
		{"comma, base64", "away", "In a meeting, back at 3", "away,," + b64("In a meeting, back at 3") + ",e", "away"},
		{"escaped by the list", "dnd", `He said "back soon?" \o/ 'ok'`, `dnd,,He said "back soon?" \o/ 'ok'`, "dnd"},
		{"leading blanks", "xa", "  indented", "xa,,  indented", "xa"},
		{"non-ASCII", "chat", "Büro – zurück um 3", "chat,,Büro – zurück um 3", "chat"},
		{"percent and colon", "available", "50%: done %s", "available,,50%: done %s", "available"},
		{"empty message", "UNAVAILABLE", "", "unavailable,,", "unavailable"},
		{"long with commas", "away", long, "away,," + b64(long) + ",e", "away"},
		{"long without commas", "away", raw, "away,," + raw, "away"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := lab.Unique("TPresence")
			prov := "CustomPresence:" + name
			u := &presence.User{ID: "p", Extension: "9210"}
			want := map[presence.UserID]*presence.Target{u.ID: {Presence: map[string]*presence.PresenceValue{
				prov: {State: tt.state, Message: tt.message}}}}
			have := map[presence.UserID]*presence.Target{u.ID: {}}
			if err := b.Observe(ctx, want, have); err != nil {
				t.Fatal(err)
			}
			if h := have[u.ID].Presence[prov]; h != nil {
				t.Fatalf("observed %+v before it was set", *h)
			}
			ops := presence.Plan(&presence.Desired{Target: *want[u.ID]}, have[u.ID])
			if len(ops) != 1 || ops[0].Kind != presence.OpPresence {
				t.Fatalf("plan %v", ops)
			}
			if out := b.Apply(ctx, u, ops); out[0].Result != presence.ResultApplied {
				t.Fatalf("outcome %+v", out[0])
			}

			// The PBX, read independently.
			ps, err := check.PresenceState(ctx, prov)
			if err != nil {
				t.Fatal(err)
			}
			if ps.State != tt.state2 || ps.Message != tt.message || ps.Subtype != "" {
				t.Errorf("PresenceState = %q %q %q, want %q %q", ps.State, ps.Subtype, ps.Message, tt.state2, tt.message)
			}
			if v := lab.DBGet(t, check, "CustomPresence/"+name); v == nil || *v != tt.stored {
				t.Errorf("astdb CustomPresence/%s = %s, want %q", name, lab.Show(v), tt.stored)
			}

			// Observed again: equal to what was wanted, nothing left to do.
			have = map[presence.UserID]*presence.Target{u.ID: {}}
			if err := b.Observe(ctx, want, have); err != nil {
				t.Fatal(err)
			}
			if h := have[u.ID].Presence[prov]; h == nil || h.State != tt.state2 || h.Message != tt.message {
				t.Errorf("observed %+v, want %q %q", h, tt.state2, tt.message)
			}
			if ops := presence.Plan(&presence.Desired{Target: *want[u.ID]}, have[u.ID]); len(ops) != 0 {
				t.Errorf("plan after apply: %v", ops)
			}
		})
	}
}

func TestApplyRefused(t *testing.T) {
	b, reg := newConcern(t, 0)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	name := lab.Unique("TRefused")
	u := &presence.User{ID: "r", Extension: "9211"}
	before := lab.ActionCount(t, reg, "Setvar")

	tests := []struct {
		op        presence.Op
		errSubstr string
	}{
		{presence.Op{Kind: presence.OpDeviceState, Key: "Custom:" + name, Value: "UNKNOWN"}, `state "UNKNOWN" is not one of`},
		{presence.Op{Kind: presence.OpDeviceState, Key: "PJSIP/9211", Value: "BUSY"}, "not a Custom: device"},
		{presence.Op{Kind: presence.OpDeviceState, Key: "Custom:" + name + ")", Value: "BUSY"}, "would break the function call"},
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:" + name, Presence: &presence.PresenceValue{State: "sleepy"}}, `state "sleepy"`},
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:" + name, Presence: &presence.PresenceValue{State: "away", Message: "a\nb"}}, "CR, LF or NUL"},
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:" + name, Presence: &presence.PresenceValue{State: "away", Message: strings.Repeat("x,", 128)}}, "Asterisk keeps at most 255"},
		{presence.Op{Kind: presence.OpPresence, Key: "Custom:" + name, Presence: &presence.PresenceValue{State: "away"}}, "not a CustomPresence: device"},
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:" + name}, "operation has no presence state"},
		{presence.Op{Kind: presence.OpDBPut, Key: "F/k", Value: "v"}, "blf: cannot apply db_put operations"},
	}
	ops := make([]presence.Op, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	out := b.Apply(ctx, u, ops)
	for i, tt := range tests {
		if out[i].Result != presence.ResultFailed || !strings.Contains(out[i].Error, tt.errSubstr) || out[i].Op.Key != tt.op.Key {
			t.Errorf("op %d %s: %+v, want failed with %q", i, tt.op.Key, out[i], tt.errSubstr)
		}
	}
	if n := lab.ActionCount(t, reg, "Setvar") - before; n != 0 {
		t.Errorf("%d Setvar sent for refused operations", n)
	}
	if ps, err := check.PresenceState(ctx, "CustomPresence:"+name); err != nil || ps.State != "not_set" {
		t.Errorf("PresenceState %+v %v", ps, err)
	}
}

// TestObserveCost checks what observing costs: nothing when no user wants lamps or presence;
// for a small batch one Getvar per lamp and one PresenceState per provider; for a larger one
// one DeviceStateList and one PresenceStateList whatever the number of users.
func TestObserveCost(t *testing.T) {
	b, reg := newConcern(t, 0)
	ctx := lab.Context(t)
	for _, users := range []int{0, 1, blf.DefaultSmallBatch, 300} {
		want := map[presence.UserID]*presence.Target{"nothing": {AstDB: map[string]*string{"F/k": nil}}}
		have := map[presence.UserID]*presence.Target{"nothing": presence.NewTarget()}
		for i := range users {
			ext := fmt.Sprint(93000 + i)
			id := presence.UserID("cost" + ext)
			want[id] = &presence.Target{
				Devices:  map[string]string{"Custom:DND" + ext: "INVALID", "Custom:PROFILE" + ext + "-1": "BUSY"},
				Presence: map[string]*presence.PresenceValue{"CustomPresence:" + ext: {State: "available"}},
			}
			have[id] = presence.NewTarget()
		}
		d, p := lab.ActionCount(t, reg, "DeviceStateList"), lab.ActionCount(t, reg, "PresenceStateList")
		g, ps := lab.ActionCount(t, reg, "Getvar"), lab.ActionCount(t, reg, "PresenceState")
		if err := b.Observe(ctx, want, have); err != nil {
			t.Fatal(err)
		}
		wantLists, wantGetvars, wantStates := 0, 0, 0
		switch {
		case users == 0:
		case len(want) <= blf.DefaultSmallBatch:
			// a few users' lamps in one Getvar, their providers in another
			wantGetvars = 2
		default:
			wantLists = 1
		}
		for _, c := range []struct {
			action    string
			before, n int
		}{
			{"DeviceStateList", d, wantLists}, {"PresenceStateList", p, wantLists},
			{"Getvar", g, wantGetvars}, {"PresenceState", ps, wantStates},
		} {
			if got := lab.ActionCount(t, reg, c.action) - c.before; got != c.n {
				t.Errorf("%d users: %d %s, want %d", users, got, c.action, c.n)
			}
		}
		for id, h := range have {
			if id != "nothing" && (len(h.Devices) != 2 || len(h.Presence) != 1) {
				t.Fatalf("%s: observed %v %v", id, h.Devices, h.Presence)
			}
		}
	}
}

// TestApplyConcurrentUsers sets lamps and presence for many users at once over one shared
// client with a small in-flight bound, and reads them back from the PBX.
func TestApplyConcurrentUsers(t *testing.T) {
	b, _ := newConcern(t, 4)
	check := env.AMI(t, true, nil)
	ctx := lab.Context(t)
	prefix := lab.Unique("TConc")
	const users = 60
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			ext := fmt.Sprint(9500 + i)
			ops := []presence.Op{
				{Kind: presence.OpDeviceState, Key: "Custom:" + prefix + ext, Value: "RINGING"},
				{Kind: presence.OpPresence, Key: "CustomPresence:" + prefix + ext, Presence: &presence.PresenceValue{State: "away", Message: "Out, " + ext}},
				{Kind: presence.OpDeviceState, Key: "Custom:" + prefix + ext, Value: "BUSY"},
			}
			out := b.Apply(ctx, &presence.User{ID: presence.UserID("c" + ext), Extension: ext}, ops)
			if !slices.Equal(presencetest.Results(out), []presence.Result{presence.ResultApplied, presence.ResultApplied, presence.ResultApplied}) {
				t.Errorf("user %s: %+v", ext, out)
			}
		})
	}
	wg.Wait()

	devs, err := check.DeviceStateList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := check.PresenceStateList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gotDev := map[string]string{}
	for _, d := range devs {
		gotDev[d.Device] = d.State
	}
	gotPres := map[string]string{}
	for _, p := range pres {
		gotPres[p.Provider] = p.State + "|" + p.Message
	}
	for i := range users {
		ext := fmt.Sprint(9500 + i)
		if s := gotDev["Custom:"+prefix+ext]; s != "BUSY" {
			t.Errorf("%s: lamp %q, want BUSY (the last operation)", ext, s)
		}
		if s := gotPres["CustomPresence:"+prefix+ext]; s != "away|Out, "+ext {
			t.Errorf("%s: presence %q", ext, s)
		}
	}
}

// TestSurvey: a full check's survey lists what the last full check needed listed, and its
// Fill then lists nothing and records what Observe would.
func TestSurvey(t *testing.T) {
	b, reg := newConcern(t, 0)
	ctx := lab.Context(t)
	want := map[presence.UserID]*presence.Target{}
	for i := range 300 {
		ext := fmt.Sprint(94000 + i)
		want[presence.UserID("survey"+ext)] = &presence.Target{
			Devices:  map[string]string{"Custom:DND" + ext: "INVALID"},
			Presence: map[string]*presence.PresenceValue{"CustomPresence:" + ext: {State: "available"}},
		}
	}
	fresh := func() map[presence.UserID]*presence.Target {
		have := map[presence.UserID]*presence.Target{}
		for id := range want {
			have[id] = presence.NewTarget()
		}
		return have
	}
	byObserve := fresh()
	if err := b.Observe(ctx, want, byObserve); err != nil {
		t.Fatal(err)
	}
	lists := func() int {
		return lab.ActionCount(t, reg, "DeviceStateList") + lab.ActionCount(t, reg, "PresenceStateList")
	}
	for _, tc := range []struct {
		name                   string
		surveyLists, fillLists int
	}{
		{"first: nothing known, Fill lists", 0, 2},
		{"then: the survey lists, Fill nothing", 2, 0},
	} {
		before := lists()
		s, err := b.Survey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := lists() - before; n != tc.surveyLists {
			t.Errorf("%s: the survey sent %d lists, want %d", tc.name, n, tc.surveyLists)
		}
		before = lists()
		have := fresh()
		if err := s.Fill(ctx, want, have); err != nil {
			t.Fatal(err)
		}
		if n := lists() - before; n != tc.fillLists {
			t.Errorf("%s: Fill sent %d lists, want %d", tc.name, n, tc.fillLists)
		}
		for id, h := range byObserve {
			if !maps.Equal(h.Devices, have[id].Devices) || len(h.Presence) != len(have[id].Presence) {
				t.Fatalf("%s: %s: Fill recorded %v %v, Observe %v %v", tc.name, id, have[id].Devices, have[id].Presence, h.Devices, h.Presence)
			}
		}
	}
}

// TestObserveOneByOneWhenCheaper: a batch above SmallBatch whose lamps and providers are few
// beside what the last lists held reads them one by one, and observes what the lists showed.
func TestObserveOneByOneWhenCheaper(t *testing.T) {
	b, reg := newConcern(t, 0)
	ctx := lab.Context(t)
	prefix := lab.Unique("TOne")
	const users, batch = 100, 10
	want := map[presence.UserID]*presence.Target{}
	for i := range users {
		ext := fmt.Sprint(9600 + i)
		id := presence.UserID("one" + ext)
		lamp, provider := "Custom:"+prefix+ext, "CustomPresence:"+prefix+ext
		out := b.Apply(ctx, &presence.User{ID: id, Extension: ext}, []presence.Op{
			{Kind: presence.OpDeviceState, Key: lamp, Value: "BUSY"},
			{Kind: presence.OpPresence, Key: provider, Presence: &presence.PresenceValue{State: "away", Message: ext}},
		})
		if !slices.Equal(presencetest.Results(out), []presence.Result{presence.ResultApplied, presence.ResultApplied}) {
			t.Fatalf("user %s: %+v", ext, out)
		}
		want[id] = &presence.Target{Devices: map[string]string{lamp: "BUSY"},
			Presence: map[string]*presence.PresenceValue{provider: {State: "away", Message: ext}}}
	}
	observe := func(ids []presence.UserID) (map[presence.UserID]*presence.Target, map[string]int) {
		t.Helper()
		w, have := map[presence.UserID]*presence.Target{}, map[presence.UserID]*presence.Target{}
		for _, id := range ids {
			w[id], have[id] = want[id], presence.NewTarget()
		}
		actions := []string{"DeviceStateList", "PresenceStateList", "Getvar", "PresenceState"}
		before := map[string]int{}
		for _, a := range actions {
			before[a] = lab.ActionCount(t, reg, a)
		}
		if err := b.Observe(ctx, w, have); err != nil {
			t.Fatal(err)
		}
		sent := map[string]int{}
		for _, a := range actions {
			if n := lab.ActionCount(t, reg, a) - before[a]; n > 0 {
				sent[a] = n
			}
		}
		return have, sent
	}
	ids := slices.Sorted(maps.Keys(want))
	all, sent := observe(ids)
	if !maps.Equal(sent, map[string]int{"DeviceStateList": 1, "PresenceStateList": 1}) {
		t.Errorf("%d users, nothing listed before: sent %v, want one list of each", users, sent)
	}
	few, sent := observe(ids[:batch])
	var lamps, providers []string
	for _, id := range ids[:batch] {
		lamps = slices.AppendSeq(lamps, maps.Keys(want[id].Devices))
		providers = slices.AppendSeq(providers, maps.Keys(want[id].Presence))
	}
	slices.Sort(lamps)
	slices.Sort(providers)
	if reads := blf.CombinedReads(lamps, providers); reads >= batch || !maps.Equal(sent, map[string]int{"Getvar": reads}) {
		t.Errorf("%d users after a list of at least %d: sent %v, want their lamps and providers read several at a time, in %d Getvars", batch, users, sent, reads)
	}
	for _, id := range ids[:batch] {
		h, l := few[id], all[id]
		if !maps.Equal(h.Devices, l.Devices) || !maps.Equal(h.Devices, want[id].Devices) ||
			len(h.Presence) != 1 || !maps.EqualFunc(h.Presence, l.Presence, func(a, b *presence.PresenceValue) bool { return *a == *b }) {
			t.Errorf("%s: read one by one %v %v, listed %v %v", id, h.Devices, h.Presence, l.Devices, l.Presence)
		}
	}
}
