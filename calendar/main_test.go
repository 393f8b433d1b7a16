package calendar

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
	"github.com/presenced/presenced/queue"
	"github.com/presenced/presenced/trigger"
)

// The integration tests run against the real lab: Asterisk 22 (the users' queue "support"),
// Redis, and a CalDAV server (Debian's Radicale, testdata/radicale).
var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true, Redis: true, Radicale: true}, func(e *lab.Env) { env = e }))
}

func testProfiles() []presence.Profile {
	return []presence.Profile{
		{ID: "available", Name: "Available", Presence: "available", OnEnter: []presence.Action{
			{Kind: presence.ActionQueueLogin, Queues: presence.QueueSelector{"all"}},
			{Kind: presence.ActionQueueUnpause, Queues: presence.QueueSelector{"all"}}}},
		{ID: "meeting", Name: "In a meeting", Presence: "dnd", Priority: 2, OnEnter: []presence.Action{
			{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Meeting"}}},
		{ID: "holiday", Name: "Holiday", Presence: "xa", Priority: 1, OnEnter: []presence.Action{
			{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Holiday"}}},
		{ID: "vacation", Name: "Vacation", Presence: "xa", Sticky: true, OnEnter: []presence.Action{
			{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Vacation"}}},
	}
}

// world is one presenced over the lab: an engine on the real Asterisk, the triggers and
// a calendar connector over the lab Redis, on a controllable clock.
type world struct {
	t      *testing.T
	clock  *fakeclock.Clock
	rdb    *redis.Client
	prefix string
	cat    *presence.Catalog
	engine *presence.Engine
	states *presence.StateStore
	pbx    *ami.Client // the test's own AMI session, to judge what the PBX does
	opts   Options
	conn   *Connector
	sched  *trigger.Scheduler
}

func newWorld(t *testing.T, start time.Time, users []presence.User, opts Options) *world {
	t.Helper()
	w := &world{t: t, clock: fakeclock.New(start), opts: opts}
	daemon := env.AMI(t, false, nil)
	w.pbx = env.AMI(t, true, nil)
	qc, err := queue.New(queue.Options{AMI: daemon, Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := presencetest.NewRig(t, presencetest.RigOptions{Redis: env.RedisClient(t, nil),
		Prefix: fmt.Sprintf("caltest:%s:%d:", t.Name(), time.Now().UnixNano()), Users: users, Profiles: testProfiles(),
		Engine: presence.EngineOptions{Concerns: []presence.Concern{qc}, Now: w.clock.Now, Logger: lab.Logger(t)}})
	w.rdb, w.prefix, w.cat, w.states, w.engine = r.Redis, r.Prefix, r.Catalog, r.States, r.Engine
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, u := range users {
			_ = w.pbx.QueueRemove(ctx, iface(u.Extension), "support")
		}
	})
	w.restart()
	return w
}

// restart is a new instance taking over (a restart, or a failover to another instance): a
// new scheduler and connector over the same Redis, with nothing in memory.
func (w *world) restart() {
	w.t.Helper()
	var err error
	w.sched, err = trigger.New(trigger.Options{Engine: w.engine, States: w.states, Redis: w.rdb, Prefix: w.prefix,
		Now: w.clock.Now, DefaultLocation: time.UTC, Logger: lab.Logger(w.t)})
	if err != nil {
		w.t.Fatal(err)
	}
	opts := w.opts
	opts.Catalog, opts.Triggers, opts.Redis, opts.Prefix, opts.Now = w.cat, w.sched, w.rdb, w.prefix, w.clock.Now
	opts.DefaultLocation, opts.Logger = time.UTC, lab.Logger(w.t)
	if w.conn != nil {
		opts.Registerer = prometheus.NewRegistry() // a new process: metrics start afresh
	}
	if w.conn, err = New(opts); err != nil {
		w.t.Fatal(err)
	}
}

// at sets the clock and acts on the plans, as the leader's connector does every second.
func (w *world) at(t time.Time) {
	w.t.Helper()
	w.clock.Set(t)
	if err := w.conn.Act(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

// poll reads every calendar now.
func (w *world) poll() {
	w.t.Helper()
	w.conn.Poll(context.Background(), true)
}

func (w *world) switchTo(id presence.UserID, profile string) {
	w.t.Helper()
	if _, err := w.engine.Switch(context.Background(), presence.SwitchRequest{User: id, Profile: profile,
		Source: presence.SourceAPI, Actor: string(id)}); err != nil {
		w.t.Fatal(err)
	}
}

// expect fails unless the user is in profile (switched by source, with an actor containing
// actor) and the PBX shows it: their interface in queue support, paused with reason when
// the profile pauses, unpaused when not.
func (w *world) expect(u presence.User, profile string, source presence.Source, actor, reason string) {
	w.t.Helper()
	st, _, err := w.states.Load(context.Background(), u.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	if st.Profile != profile || st.Source != source || !strings.Contains(st.Actor, actor) {
		w.t.Fatalf("at %s %s is in %q (source %s, actor %q), want %q (source %s, actor ~%q)", w.clock.Now().Format(time.DateTime),
			u.ID, st.Profile, st.Source, st.Actor, profile, source, actor)
	}
	// The switch returned once its pass applied it; the PBX is read directly.
	status, err := w.pbx.QueueStatus(context.Background(), "support", "")
	if err != nil {
		w.t.Fatal(err)
	}
	for _, m := range status.Members {
		if !strings.EqualFold(m.Location, iface(u.Extension)) {
			continue
		}
		if m.Paused != (reason != "") || m.PausedReason != reason {
			w.t.Fatalf("at %s %s in %s: paused %v (%q) on the PBX, want paused %v (%q)", w.clock.Now().Format(time.DateTime),
				u.ID, profile, m.Paused, m.PausedReason, reason != "", reason)
		}
		return
	}
	w.t.Fatalf("%s is not a member of queue support on the PBX", u.ID)
}

func iface(ext string) string {
	return strings.ReplaceAll(presence.DefaultNaming().QueueInterface, "{ext}", ext)
}

// labUser is a user with a unique extension in queue support and the calendar src.
func labUser(t *testing.T, id string, src *presence.CalendarSource) presence.User {
	ext := fmt.Sprintf("97%06d", time.Now().UnixNano()%1000000)
	return presence.User{ID: presence.UserID(id), Extension: ext, Calendar: src,
		Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}},
		Queues:  []presence.QueueMembership{{Name: "support"}}}
}

// secretFile writes a credentials file for the test and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := writeSecret(p, content); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeSecret (re)writes a credentials file, as an admin rotating it would.
func writeSecret(path, content string) error { return os.WriteFile(path, []byte(content+"\n"), 0o600) }

// dav speaks to the lab CalDAV server as a calendar client would.
type dav struct {
	t          *testing.T
	user, pass string
	collection string // URL of the test's calendar, ending in /
}

// newCalendar creates a calendar collection of its own for the test (MKCALENDAR).
func newCalendar(t *testing.T, user, pass string) *dav {
	t.Helper()
	d := &dav{t: t, user: user, pass: pass,
		collection: fmt.Sprintf("%s%s/%s/", env.RadicaleURL, user, lab.Unique("cal"))}
	d.do("MKCALENDAR", d.collection, "", http.StatusCreated)
	return d
}

func (d *dav) do(method, url, body string, want int) {
	d.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.SetBasicAuth(d.user, d.pass)
	if body != "" {
		req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want && !(want == http.StatusCreated && resp.StatusCode == http.StatusNoContent) {
		d.t.Fatalf("%s %s: %s, want %d", method, url, resp.Status, want)
	}
}

// put creates or replaces the event object name with the VEVENTs given.
func (d *dav) put(name, vevents string) {
	d.t.Helper()
	d.do(http.MethodPut, d.collection+name+".ics", vcalendar(vevents), http.StatusCreated)
}

func (d *dav) delete(name string) {
	d.t.Helper()
	d.do(http.MethodDelete, d.collection+name+".ics", "", http.StatusOK)
}

func vcalendar(vevents string) string {
	body := "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presenced//test//EN\n" + strings.TrimSpace(vevents) + "\nEND:VCALENDAR\n"
	return strings.ReplaceAll(body, "\n", "\r\n")
}
