package astdb_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/webhook"
)

// engine does what presence's engine does with the concerns, without Redis: observe through
// every concern at once, plan, and hand each concern the operations of its kinds.
type engine struct {
	concerns []presence.Concern
}

func (e engine) observe(t *testing.T, ctx context.Context, want map[presence.UserID]*presence.Target) map[presence.UserID]*presence.Target {
	t.Helper()
	have := map[presence.UserID]*presence.Target{}
	for u := range want {
		have[u] = presence.NewTarget()
	}
	errs := make([]error, len(e.concerns))
	var wg sync.WaitGroup
	for i, c := range e.concerns {
		wg.Go(func() { errs[i] = c.Observe(ctx, want, have) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: observe: %v", e.concerns[i].Name(), err)
		}
	}
	return have
}

func (e engine) apply(t *testing.T, ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	t.Helper()
	var all []presence.Outcome
	for _, c := range e.concerns {
		var mine []presence.Op
		for _, op := range ops {
			if slices.Contains(c.Kinds(), op.Kind) {
				mine = append(mine, op)
			}
		}
		if len(mine) == 0 {
			continue
		}
		out := c.Apply(ctx, u, mine)
		if len(out) != len(mine) {
			t.Fatalf("%s: %d outcomes for %d operations", c.Name(), len(out), len(mine))
		}
		all = append(all, out...)
	}
	if len(all) != len(ops) {
		t.Fatalf("%d outcomes for %d operations: some kind has no concern", len(all), len(ops))
	}
	return all
}

// TestRoundTrip switches user 9201 into a profile that uses every action presenced has, and
// back: presence.FoldSteps → Compile → Observe → Plan → Apply → Observe → Plan is empty, with the
// result read back from the PBX.
func TestRoundTrip(t *testing.T) {
	ctx := lab.Context(t)
	check := env.AMI(t, true, nil)
	conn := env.AMI(t, false, nil) // the daemon's one connection, shared by the concerns
	fm, err := astdb.New(astdb.Options{AMI: conn, Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	lamps, err := blf.New(blf.Options{AMI: conn, Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		hookMu   sync.Mutex
		hookBody [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hookBody = append(hookBody, b)
		hookMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	hooks, err := webhook.New(webhook.Options{HTTPClient: srv.Client(), Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := engine{concerns: []presence.Concern{fm, lamps, hooks}}

	fam := lab.Unique("PDRT")
	glob := lab.Unique("PDRT")
	lamp := "Custom:" + lab.Unique("TRoundTrip")
	on, off := true, false
	meeting := presence.Profile{ID: "meeting", Name: "Meeting", Activation: "7", OnEnter: []presence.Action{
		{Kind: presence.ActionDND},
		{Kind: presence.ActionFollowMe, Families: []presence.Family{presence.FamilyDesk, presence.FamilyMobile}, Order: presence.RingSequential, RingTime: 15},
		{Kind: presence.ActionForward, Type: presence.ForwardUnconditional, To: "1002"},
		{Kind: presence.ActionNoAnswer, To: "voicemail"},
		{Kind: presence.ActionCallerID, Value: `"Round Trip" <9201>`},
		{Kind: presence.ActionLocation, Device: "PJSIP/hotdesk-3"},
		{Kind: presence.ActionPresence, State: "away", Message: "In a meeting, back at 3"},
		{Kind: presence.ActionLamp, Device: lamp, State: "busy"},
		{Kind: presence.ActionVariable, Name: fam + "/9201/note", Value: "50%: a,b"},
		{Kind: presence.ActionVariable, Scope: "global", Name: glob, Value: "x: y, z %d"},
		{Kind: presence.ActionWebhook, URL: srv.URL + "/switch", Timeout: "1s"},
	}, OnExit: []presence.Action{
		{Kind: presence.ActionForward, Type: presence.ForwardUnconditional, On: &off},
		{Kind: presence.ActionVariable, Scope: "global", Name: glob, On: &off},
		{Kind: presence.ActionVariable, Name: fam + "/9201/note", On: &off},
		{Kind: presence.ActionMobile, On: &on},
	}}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{{ID: "rt9201", Name: "Round Trip", Extension: "9201", Devices: []presence.Device{
		{Dial: "PJSIP/9201", Family: presence.FamilyDesk},
		{Dial: "PJSIP/9201-mobile", Family: presence.FamilyMobile},
	}}}, Profiles: []presence.Profile{meeting}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := cat.User("rt9201")
	naming := presence.DefaultNaming()
	t.Cleanup(func() {
		bg := context.Background()
		_ = check.DBDelTree(bg, "PROFILE", "9201")
		_ = check.DBDelTree(bg, fam, "")
		for _, k := range []string{"DND/9201", "CF/9201"} {
			f, key, _ := strings.Cut(k, "/")
			_ = check.DBDel(bg, f, key)
		}
		_ = check.Setvar(bg, "", glob, "")
	})

	// switchTo runs one switch through the loop: the user's lineage (the steps the engine
	// records) folded, compiled, planned and applied, with the switch's webhooks.
	var steps []presence.Step
	switchTo := func(t *testing.T, from, to *presence.Profile, info string) []presence.Outcome {
		t.Helper()
		if from != nil {
			steps = append(steps, presence.Step{Profile: from.ID, Exit: true, Info: info})
		}
		steps = append(steps, presence.Step{Profile: to.ID, Info: info})
		in := presence.FoldSteps(u, steps, cat.Profiles, nil)
		desired := presence.Compile(u, in, presence.Active{Profile: to, Info: info}, cat.Profiles, naming)
		want := map[presence.UserID]*presence.Target{u.ID: &desired.Target}
		have := e.observe(t, ctx, want)
		ops := presence.Plan(desired, have[u.ID])
		if len(ops) == 0 {
			t.Fatal("empty plan for a switch")
		}
		fromID := ""
		if from != nil {
			fromID = from.ID
		}
		for _, h := range switchWebhooks(from, to) {
			ev := &presence.SwitchEvent{User: u.ID, Extension: u.Extension, From: fromID, To: to.ID, Info: info, Source: presence.SourceAPI, At: time.Now()}
			ops = append(ops, presence.Op{Kind: presence.OpWebhook, Webhook: &h, Event: ev})
		}
		out := e.apply(t, ctx, u, ops)
		for _, o := range out {
			if o.Result != presence.ResultApplied && o.Result != presence.ResultUnchanged {
				t.Errorf("%s: %s %s", o.Op, o.Result, o.Error)
			}
		}
		// Observed again, everything is as wanted.
		have = e.observe(t, ctx, want)
		if ops := presence.Plan(desired, have[u.ID]); len(ops) != 0 {
			t.Errorf("plan after apply is not empty: %v", ops)
		}
		return out
	}

	avail, _ := cat.Profile(presence.ProfileAvailable)
	mtg, _ := cat.Profile("meeting")
	out := switchTo(t, nil, mtg, "room 4, floor 2")
	kinds := map[presence.OpKind]int{}
	for _, o := range out {
		kinds[o.Op.Kind]++
	}
	for _, k := range []presence.OpKind{presence.OpDBPut, presence.OpDeviceState, presence.OpPresence, presence.OpGlobal, presence.OpWebhook} {
		if kinds[k] == 0 {
			t.Errorf("the switch into the meeting had no %s operation", k)
		}
	}

	// The PBX, read independently.
	wantDB := map[string]*string{
		"DND/9201":                ptr("YES"),
		"CF/9201":                 ptr("1002"),
		"PROFILE/9201/active":     ptr("meeting"),
		"PROFILE/9201/info":       ptr("room 4, floor 2"),
		"PROFILE/9201/dndtext":    ptr("Meeting (room 4, floor 2)"),
		"PROFILE/9201/dialstring": ptr("PJSIP/9201|PJSIP/9201-mobile|"), // sequential: a step per family
		"PROFILE/9201/ringmode":   ptr("sequential"),
		"PROFILE/9201/ringtime":   ptr("15"),
		"PROFILE/9201/noanswer":   ptr("voicemail"),
		"PROFILE/9201/callerid":   ptr(`"Round Trip" <9201>`),
		"PROFILE/9201/location":   ptr("PJSIP/hotdesk-3"),
		fam + "/9201/note":        ptr("50%: a,b"),
	}
	for k, w := range wantDB {
		if got := lab.DBGet(t, check, k); lab.Show(got) != lab.Show(w) {
			t.Errorf("astdb %s = %s, want %s", k, lab.Show(got), lab.Show(w))
		}
	}
	if v := lab.Getvar(t, check, glob); v != "x: y, z %d" {
		t.Errorf("global %s = %q", glob, v)
	}
	for dev, w := range map[string]string{"Custom:DND9201": "BUSY", lamp: "BUSY", "Custom:PROFILE9201-7": "BUSY",
		"Custom:PROFILE9201-1": "INVALID", "Custom:PROFILE9201-2": "INVALID"} {
		if got := lab.Getvar(t, check, "DEVICE_STATE("+dev+")"); got != w {
			t.Errorf("%s = %s, want %s", dev, got, w)
		}
	}
	ps, err := check.PresenceState(ctx, "CustomPresence:9201")
	if err != nil {
		t.Fatal(err)
	}
	if ps.State != "away" || ps.Message != "In a meeting, back at 3" {
		t.Errorf("PresenceState = %q %q", ps.State, ps.Message)
	}
	if v := lab.DBGet(t, check, "CustomPresence/9201"); v == nil || !strings.HasSuffix(*v, ",e") {
		t.Errorf("CustomPresence/9201 = %s, want it base64-encoded", lab.Show(v))
	}
	hookMu.Lock()
	if len(hookBody) != 1 {
		t.Errorf("%d webhook calls, want 1", len(hookBody))
	} else {
		var p webhook.Payload
		if err := json.Unmarshal(hookBody[0], &p); err != nil || p.User != "rt9201" || p.Extension != "9201" || p.From != "" || p.To != "meeting" || p.Info != "room 4, floor 2" {
			t.Errorf("webhook payload %s (%v)", hookBody[0], err)
		}
	}
	hookMu.Unlock()

	// And back: the meeting's on_exit, then available's on_enter (DND off).
	switchTo(t, mtg, avail, "")
	wantDB = map[string]*string{
		"DND/9201":             nil,
		"CF/9201":              nil,
		"PROFILE/9201/active":  ptr("available"),
		"PROFILE/9201/info":    nil,
		"PROFILE/9201/dndtext": nil,
		fam + "/9201/note":     nil,
		// Left as the meeting set them: no profile since said otherwise.
		"PROFILE/9201/dialstring": ptr("PJSIP/9201|PJSIP/9201-mobile|"),
		"PROFILE/9201/callerid":   ptr(`"Round Trip" <9201>`),
	}
	for k, w := range wantDB {
		if got := lab.DBGet(t, check, k); lab.Show(got) != lab.Show(w) {
			t.Errorf("after the switch back: astdb %s = %s, want %s", k, lab.Show(got), lab.Show(w))
		}
	}
	if v := lab.Getvar(t, check, glob); v != "" {
		t.Errorf("after the switch back: global %s = %q", glob, v)
	}
	for dev, w := range map[string]string{"Custom:DND9201": "INVALID", "Custom:PROFILE9201-7": "INVALID", "Custom:PROFILE9201-1": "BUSY"} {
		if got := lab.Getvar(t, check, "DEVICE_STATE("+dev+")"); got != w {
			t.Errorf("after the switch back: %s = %s, want %s", dev, got, w)
		}
	}
	if ps, err := check.PresenceState(ctx, "CustomPresence:9201"); err != nil || ps.State != "available" || ps.Message != "Available" {
		t.Errorf("after the switch back: PresenceState = %+v, %v", ps, err)
	}
}

// switchWebhooks are the webhooks a switch from from (nil for none) to to calls: those of from's
// on_exit chain, then of to's on_enter chain, as the engine makes them.
func switchWebhooks(from, to *presence.Profile) []presence.Webhook {
	var hooks []presence.Webhook
	add := func(chain []presence.Action) {
		for _, a := range chain {
			if a.Kind == presence.ActionWebhook && a.IsEnabled() {
				hooks = append(hooks, presence.Webhook{URL: a.URL, Timeout: a.Timeout})
			}
		}
	}
	if from != nil {
		add(from.OnExit)
	}
	add(to.OnEnter)
	return hooks
}
