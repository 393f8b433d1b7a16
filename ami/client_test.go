package ami_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ami/amitest"
)

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t testing.TB, srv *amitest.Server) ami.Config {
	return ami.Config{
		Addr:         srv.Addr,
		Username:     amitest.Username,
		Secret:       amitest.Secret,
		DialTimeout:  2 * time.Second,
		PingInterval: time.Hour,
		BackoffMin:   5 * time.Millisecond,
		BackoffMax:   40 * time.Millisecond,
		Logger:       testLogger(t),
		Registerer:   prometheus.NewRegistry(),
	}
}

// runClient starts Run and stops it (checking it returns nil) at cleanup.
func runClient(t testing.TB, cfg ami.Config) *ami.Client {
	t.Helper()
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	return c
}

// run starts c's Run and stops it (checking it returns nil) at cleanup.
func run(t testing.TB, c *ami.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// unansweredPings runs a client that pings every 20 ms against a server that never answers
// a Ping, subscribed (with room for events) before it connects, and returns once Asterisk is
// fully booted on it.
func unansweredPings(t testing.TB, events int) (*amitest.Server, *ami.Client, *ami.Subscription) {
	t.Helper()
	srv := amitest.NewServer(t)
	srv.SetPingReplies(false)
	cfg := testConfig(t, srv)
	cfg.PingInterval = 20 * time.Millisecond
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(events)
	run(t, c)
	expectEvents(t, sub, ami.EventConnected, ami.EventFullyBooted)
	return srv, c, sub
}

// startClient runs a client against srv and waits until it is logged in.
func startClient(t testing.TB, srv *amitest.Server, mod func(*ami.Config)) *ami.Client {
	t.Helper()
	cfg := testConfig(t, srv)
	if mod != nil {
		mod(&cfg)
	}
	c := runClient(t, cfg)
	waitFor(t, "logged in", func() bool { return c.Status().LoggedIn })
	return c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nextEvent returns the next event from sub, skipping none.
func nextEvent(t testing.TB, sub *ami.Subscription) *ami.Message {
	t.Helper()
	select {
	case m, ok := <-sub.Events():
		if !ok {
			t.Fatalf("subscription closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no event within 5s")
	}
	return nil
}

// expectEvents reads events from sub and checks their names in order.
func expectEvents(t testing.TB, sub *ami.Subscription, names ...string) []*ami.Message {
	t.Helper()
	var got []*ami.Message
	for _, n := range names {
		m := nextEvent(t, sub)
		got = append(got, m)
		if m.Event() != n {
			t.Fatalf("event %d: got %q (%s), want %q", len(got)-1, m.Event(), m, n)
		}
	}
	return got
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echoGetvar answers Getvar with Value = "v:" + Variable.
func echoGetvar(c *amitest.Conn, req *ami.Message) {
	_ = c.Reply(req, "Success", "Variable", req.Get("Variable"), "Value", "v:"+req.Get("Variable"))
}

func TestNewValidates(t *testing.T) {
	ok := ami.Config{Addr: "127.0.0.1:5038", Username: "u"}
	tests := []struct {
		name string
		mod  func(*ami.Config)
		want string
	}{
		{"no addr", func(c *ami.Config) { c.Addr = "" }, "Config.Addr"},
		{"bad addr", func(c *ami.Config) { c.Addr = "nohostport" }, "Config.Addr"},
		{"no user", func(c *ami.Config) { c.Username = "" }, "Config.Username"},
		{"secret CRLF", func(c *ami.Config) { c.Secret = "a\r\nb" }, "Config.Secret"},
		{"events without system", func(c *ami.Config) { c.Events = "call,agent" }, "Config.Events"},
		{"negative ping", func(c *ami.Config) { c.PingInterval = -1 }, "Config.PingInterval"},
		{"negative dial timeout", func(c *ami.Config) { c.DialTimeout = -1 }, "Config.DialTimeout"},
		{"backoff max < min", func(c *ami.Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, "Config.BackoffMax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := ami.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error naming %s", err, tt.want)
			}
		})
	}
	if _, err := ami.New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if _, err := ami.New(ami.Config{Addr: "h:1", Username: "u", Events: "on"}); err != nil {
		t.Fatalf("Events on: %v", err)
	}
}

func TestNotConnected(t *testing.T) {
	c, err := ami.New(ami.Config{Addr: "127.0.0.1:1", Username: "u", Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Do(context.Background(), ami.Ping{})
	if !errors.Is(err, ami.ErrNotConnected) || !ami.SafeToRetry(err) {
		t.Fatalf("Do before Run: %v", err)
	}
	if _, err := c.List(context.Background(), ami.DeviceStateList{}); !errors.Is(err, ami.ErrNotConnected) {
		t.Fatalf("List before Run: %v", err)
	}
	if err := c.DBPut(context.Background(), "F", "k", "v"); !errors.Is(err, ami.ErrNotConnected) {
		t.Fatalf("DBPut before Run: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("ErrNotConnected was not immediate")
	}
	m := ami.MetricsForTest(c)
	if got := testutil.ToFloat64(m.Actions.WithLabelValues("Ping", "disconnected")); got != 1 {
		t.Errorf("actions_total{Ping,disconnected} = %v", got)
	}
}

func TestConnectDoAndSyntheticEvents(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Getvar", echoGetvar)
	cfg := testConfig(t, srv)
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	evs := expectEvents(t, sub, ami.EventConnected, ami.EventFullyBooted)
	if !evs[0].Synthetic() || evs[0].Get(ami.HeaderSynthetic) != "true" {
		t.Errorf("Connected is not marked synthetic: %s", evs[0])
	}
	if evs[1].Synthetic() {
		t.Errorf("Asterisk's FullyBooted marked synthetic")
	}
	waitFor(t, "fully booted", func() bool { return c.Status().FullyBooted })
	st := c.Status()
	if !st.Connected || !st.LoggedIn || st.Since.IsZero() || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	v, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "X")
	if err != nil || v != "v:X" {
		t.Fatalf("Getvar = %q, %v", v, err)
	}

	login := srv.ReceivedAction("Login")[0]
	if login.Get("Events") != ami.DefaultEvents || login.Get("Username") != amitest.Username || login.ActionID() == "" {
		t.Errorf("login action %s", login)
	}
	gv := srv.ReceivedAction("Getvar")[0]
	if !strings.HasPrefix(gv.ActionID(), "pd-") || gv.ActionID() == login.ActionID() {
		t.Errorf("ActionID %q not generated by the client", gv.ActionID())
	}

	m := ami.MetricsForTest(c)
	if testutil.ToFloat64(m.Connected) != 1 || testutil.ToFloat64(m.FullyBooted) != 1 {
		t.Errorf("gauges connected=%v booted=%v", testutil.ToFloat64(m.Connected), testutil.ToFloat64(m.FullyBooted))
	}
	if got := testutil.ToFloat64(m.Actions.WithLabelValues("Getvar", "success")); got != 1 {
		t.Errorf("actions_total{Getvar,success} = %v", got)
	}
	if got := testutil.ToFloat64(m.Events.WithLabelValues("FullyBooted")); got != 1 {
		t.Errorf("events_total{FullyBooted} = %v", got)
	}
	if n := testutil.CollectAndCount(m.ActionDuration); n < 1 {
		t.Errorf("no action duration observed")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	// Run closed the subscription after a final Disconnected event.
	var last *ami.Message
	for m := range sub.Events() {
		last = m
	}
	if last == nil || last.Event() != ami.EventDisconnected || !last.Synthetic() {
		t.Fatalf("last event before close = %v", last)
	}
	if testutil.ToFloat64(m.Connected) != 0 {
		t.Errorf("connected gauge still 1")
	}
	if _, err := c.Do(context.Background(), ami.Ping{}); !errors.Is(err, ami.ErrNotConnected) {
		t.Errorf("Do after Run: %v", err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Errorf("second Run succeeded")
	}
	if s := c.Subscribe(1); s != nil {
		if _, ok := <-s.Events(); ok {
			t.Errorf("Subscribe after Run returned an open subscription")
		}
	}
}

func TestLoginFailureRetries(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetCredentials("other", "x")
	cfg := testConfig(t, srv)
	c := runClient(t, cfg)
	waitFor(t, "login error", func() bool { return strings.Contains(c.Status().LastError, "Authentication failed") })
	if c.Status().LoggedIn {
		t.Fatal("logged in with bad credentials")
	}
	if len(srv.ReceivedAction("Login")) < 1 {
		t.Fatal("no login attempt")
	}
	srv.SetCredentials(amitest.Username, amitest.Secret)
	waitFor(t, "logged in after fixing credentials", func() bool { return c.Status().LoggedIn })
}

func TestDialFaultsBackoff(t *testing.T) {
	srv := amitest.NewServer(t)
	var attempts atomic.Int32
	var times []time.Time
	var mu sync.Mutex
	c := startClient(t, srv, func(cfg *ami.Config) {
		cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 40*time.Millisecond
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			if attempts.Add(1) <= 4 {
				return nil, errors.New("injected dial fault")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	if c.Status().LastError != "" {
		t.Errorf("LastError not cleared after connecting: %q", c.Status().LastError)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) < 5 {
		t.Fatalf("%d attempts", len(times))
	}
	// Delays grow: 5-10ms, 10-20ms, 20-40ms, 20-40ms (capped).
	if d := times[4].Sub(times[0]); d < 55*time.Millisecond {
		t.Errorf("4 retries took only %v; backoff not applied", d)
	}
}

func TestResponseErrors(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("QueueAdd", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Error", "Message", "Unable to add interface: Already there")
	})
	srv.Handle("DBPut", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Error", "Message", "Permission denied")
	})
	srv.Handle("DBGet", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Error", "Message", "Database entry not found")
	})
	c := startClient(t, srv, nil)
	ctx := ctxTimeout(t, 2*time.Second)

	err := c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "sales", Interface: "PJSIP/1001"})
	var re *ami.ResponseError
	if !errors.As(err, &re) || re.Action != "QueueAdd" || re.Message != "Unable to add interface: Already there" {
		t.Fatalf("QueueAdd error = %#v", err)
	}
	if !strings.Contains(err.Error(), "queue add PJSIP/1001 to sales") {
		t.Errorf("error lacks context: %v", err)
	}
	if msg, ok := ami.ResponseMessage(err); !ok || msg != re.Message {
		t.Errorf("ResponseMessage = %q, %v", msg, ok)
	}
	if ami.SafeToRetry(err) {
		t.Errorf("a response error is not SafeToRetry")
	}

	err = c.DBPut(ctx, "F", "k", "v")
	if !errors.Is(err, ami.ErrPermissionDenied) {
		t.Errorf("DBPut error %v does not match ErrPermissionDenied", err)
	}
	_, err = c.DBGet(ctx, "F", "k")
	if msg, _ := ami.ResponseMessage(err); msg != "Database entry not found" {
		t.Errorf("DBGet error = %v", err)
	}
	m := ami.MetricsForTest(c)
	if got := testutil.ToFloat64(m.Actions.WithLabelValues("QueueAdd", "error")); got != 1 {
		t.Errorf("actions_total{QueueAdd,error} = %v", got)
	}
}

func TestListWithInterleavedEvents(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("QueueStatus", func(c *amitest.Conn, req *ami.Message) {
		unrelated := func(i int) {
			_ = c.Send(ami.NewMessage("Event", "DeviceStateChange", "Device", fmt.Sprintf("Custom:X%d", i), "State", "BUSY"))
		}
		_ = c.Reply(req, "Success", "EventList", "start", "Message", "Queue status will follow")
		unrelated(1)
		_ = c.Send(amitest.Event(req, "QueueParams", "Queue", "sales", "Max", "0", "Strategy", "rrmemory", "Calls", "2",
			"Holdtime", "7", "TalkTime", "30", "Completed", "5", "Abandoned", "1", "ServiceLevel", "60",
			"ServicelevelPerf", "87.5", "ServicelevelPerf2", "90.0", "Weight", "0"))
		unrelated(2)
		// The example of docs/asterisk.md §2.3, verbatim.
		_ = c.Send(amitest.Event(req, "QueueMember", "Queue", "sales", "Name", "Alice", "Location", "Local/1001@hints-dial/n",
			"StateInterface", "PJSIP/1001", "Membership", "dynamic", "Penalty", "0", "CallsTaken", "0", "LastCall", "0",
			"LastPause", "1795342339", "LoginTime", "1795342338", "InCall", "0", "Status", "5", "Paused", "1",
			"PausedReason", "meeting", "Wrapuptime", "0"))
		// An event of another list (another ActionID) must not be mixed in.
		_ = c.Send(ami.NewMessage("Event", "QueueMember", "ActionID", "someone-else", "Queue", "x", "Name", "Mallory"))
		_ = c.Send(amitest.Event(req, "QueueEntry", "Queue", "sales", "Position", "1", "Channel", "PJSIP/1003-00000001",
			"Uniqueid", "171.1", "CallerIDNum", "1003", "CallerIDName", "Carol", "ConnectedLineNum", "<unknown>",
			"ConnectedLineName", "<unknown>", "Wait", "12", "Priority", "0"))
		unrelated(3)
		_ = c.Send(amitest.Event(req, "QueueStatusComplete", "EventList", "Complete", "ListItems", "3"))
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(16)

	st, err := c.QueueStatus(ctxTimeout(t, 2*time.Second), "sales", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Params) != 1 || len(st.Members) != 1 || len(st.Entries) != 1 {
		t.Fatalf("got %d params, %d members, %d entries", len(st.Params), len(st.Members), len(st.Entries))
	}
	p := st.Params[0]
	if p.Queue != "sales" || p.Strategy != "rrmemory" || p.Calls != 2 || p.Holdtime != 7 || p.Completed != 5 ||
		p.ServiceLevel != 60 || p.ServicelevelPerf != 87.5 {
		t.Errorf("params %+v", p)
	}
	mem := st.Members[0]
	if mem.Name != "Alice" || mem.Location != "Local/1001@hints-dial/n" || mem.StateInterface != "PJSIP/1001" ||
		mem.Membership != "dynamic" || !mem.Paused || mem.PausedReason != "meeting" || mem.Status != ami.DeviceUnavailable ||
		mem.InCall || !mem.LastCall.IsZero() || mem.LastPause.Unix() != 1795342339 || mem.LoginTime.Unix() != 1795342338 {
		t.Errorf("member %+v", mem)
	}
	e := st.Entries[0]
	if e.Position != 1 || e.Channel != "PJSIP/1003-00000001" || e.CallerIDName != "Carol" || e.Wait != 12*time.Second {
		t.Errorf("entry %+v", e)
	}

	// The unrelated events reached the subscriber, in order; the other
	// list's item too (it is not ours).
	evs := expectEvents(t, sub, "DeviceStateChange", "DeviceStateChange", "QueueMember", "DeviceStateChange")
	if evs[0].Get("Device") != "Custom:X1" || evs[3].Get("Device") != "Custom:X3" || evs[2].Get("Name") != "Mallory" {
		t.Errorf("events out of order: %v", evs)
	}

	// Raw List keeps the response and the Complete event.
	l, err := c.List(ctxTimeout(t, 2*time.Second), ami.QueueStatus{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Response.Get("EventList") != "start" || l.Complete.Get("ListItems") != "3" || len(l.Items) != 3 {
		t.Errorf("list: %v / %d items / %v", l.Response, len(l.Items), l.Complete)
	}
}

func TestDoOnListActionSwallowsItems(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("DeviceStateList", func(c *amitest.Conn, req *ami.Message) {
		_ = c.SendList(req, "DeviceStateListComplete",
			ami.NewMessage("Event", "DeviceStateChange", "Device", "Custom:A", "State", "BUSY"),
			ami.NewMessage("Event", "DeviceStateChange", "Device", "Custom:B", "State", "INUSE"))
		_ = c.Send(ami.NewMessage("Event", "UserEvent", "UserEvent", "after"))
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(16)
	resp, err := c.Do(ctxTimeout(t, 2*time.Second), ami.DeviceStateList{})
	if err != nil || resp.Get("EventList") != "start" {
		t.Fatalf("Do = %v, %v", resp, err)
	}
	// The list items are not events for subscribers.
	if ev := nextEvent(t, sub); ev.Event() != "UserEvent" {
		t.Fatalf("subscriber got %s", ev)
	}
	states, err := c.DeviceStateList(ctxTimeout(t, 2*time.Second))
	if err != nil || len(states) != 2 || states[1].Device != "Custom:B" || states[1].State != "INUSE" {
		t.Fatalf("DeviceStateList = %+v, %v", states, err)
	}
}

// TestListIncomplete: a list whose Complete event counts more items than arrived (Asterisk
// dropped some for a slow reader) fails with ErrListIncomplete, naming both counts; the next
// list on the same connection is whole again.
func TestListIncomplete(t *testing.T) {
	srv := amitest.NewServer(t)
	var calls atomic.Int32
	srv.Handle("DBGetTree", func(c *amitest.Conn, req *ami.Message) {
		item := func(k string) *ami.Message { return amitest.Event(req, "DBGetTreeResponse", "Key", k, "Val", "v") }
		_ = c.Reply(req, "Success", "EventList", "start", "Message", "Result will follow")
		_ = c.Send(item("/F/a"))
		if calls.Add(1) == 1 {
			// One of three items lost on the way.
			_ = c.Send(amitest.Event(req, "DBGetTreeComplete", "EventList", "Complete", "ListItems", "3"))
			return
		}
		_ = c.Send(amitest.Event(req, "DBGetTreeComplete", "EventList", "Complete", "ListItems", "1"))
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	_, err := c.DBGetTree(ctxTimeout(t, 2*time.Second), "F", "")
	if !errors.Is(err, ami.ErrListIncomplete) || !strings.Contains(err.Error(), "1 items arrived, DBGetTreeComplete says 3") {
		t.Fatalf("DBGetTree with an item lost: %v, want ErrListIncomplete naming 1 and 3", err)
	}
	entries, err := c.DBGetTree(ctxTimeout(t, 2*time.Second), "F", "")
	if err != nil || len(entries) != 1 {
		t.Fatalf("DBGetTree whole: %v, %v", entries, err)
	}
}

func TestEventWithActionIDAfterResponseGoesToSubscribers(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Originate", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Success", "Message", "Originate successfully queued")
		_ = c.Send(amitest.Event(req, "OriginateResponse", "Response", "Success", "Reason", "4", "Uniqueid", "t1-1"))
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(16)
	err := c.Originate(ctxTimeout(t, 2*time.Second), ami.OriginateSpec{Channel: "Local/*551234@features", Application: "Wait", Data: "30", Async: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, sub)
	if ev.Event() != "OriginateResponse" || ev.ActionID() != srv.ReceivedAction("Originate")[0].ActionID() {
		t.Fatalf("got %s", ev)
	}
}

func TestDisconnectMidList(t *testing.T) {
	srv := amitest.NewServer(t)
	var calls atomic.Int32
	srv.Handle("DBGetTree", func(c *amitest.Conn, req *ami.Message) {
		if calls.Add(1) == 1 {
			_ = c.Reply(req, "Success", "EventList", "start", "Message", "Result will follow")
			_ = c.Send(amitest.Event(req, "DBGetTreeResponse", "Key", "/F/a", "Val", "1"))
			_ = c.Close()
			return
		}
		_ = c.SendList(req, "DBGetTreeComplete", ami.NewMessage("Event", "DBGetTreeResponse", "Key", "/F/a", "Val", "1"))
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(16)

	_, err := c.DBGetTree(ctxTimeout(t, 2*time.Second), "F", "")
	if !errors.Is(err, ami.ErrConnClosed) {
		t.Fatalf("mid-list disconnect: %v, want ErrConnClosed", err)
	}
	if ami.SafeToRetry(err) {
		t.Errorf("ErrConnClosed must not be SafeToRetry")
	}
	evs := expectEvents(t, sub, ami.EventDisconnected, ami.EventConnected, ami.EventFullyBooted)
	if evs[0].Get("Reason") == "" {
		t.Errorf("Disconnected without reason")
	}
	waitFor(t, "logged in again", func() bool { return c.Status().LoggedIn })
	entries, err := c.DBGetTree(ctxTimeout(t, 2*time.Second), "F", "")
	if err != nil || len(entries) != 1 || entries[0].Key != "/F/a" || entries[0].Family != "F" || entries[0].Name != "a" || entries[0].Value != "1" {
		t.Fatalf("after reconnect: %+v, %v", entries, err)
	}
	m := ami.MetricsForTest(c)
	if got := testutil.ToFloat64(m.Reconnects); got != 1 {
		t.Errorf("reconnects_total = %v", got)
	}
	if got := testutil.ToFloat64(m.Actions.WithLabelValues("DBGetTree", "disconnected")); got != 1 {
		t.Errorf("actions_total{DBGetTree,disconnected} = %v", got)
	}
	if srv.Logins() != 2 {
		t.Errorf("logins = %d", srv.Logins())
	}
}

func TestTimeoutThenLateReply(t *testing.T) {
	srv := amitest.NewServer(t)
	release := make(chan struct{})
	srv.Handle("Getvar", func(c *amitest.Conn, req *ami.Message) {
		if req.Get("Variable") == "slow" {
			go func() {
				<-release
				echoGetvar(c, req)
			}()
			return
		}
		echoGetvar(c, req)
	})
	srv.Handle("DBGetTree", func(c *amitest.Conn, req *ami.Message) {
		go func() {
			<-release
			_ = c.SendList(req, "DBGetTreeComplete", ami.NewMessage("Event", "DBGetTreeResponse", "Key", "/F/late", "Val", "x"))
		}()
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(16)
	m := ami.MetricsForTest(c)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := c.Getvar(ctx, "", "slow")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow Getvar: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := c.DBGetTree(ctx2, "F", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow DBGetTree: %v", err)
	}
	// A call made while the late replies are outstanding gets its own.
	if v, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "fast1"); err != nil || v != "v:fast1" {
		t.Fatalf("fast1 = %q, %v", v, err)
	}
	close(release)
	// Late Getvar reply (1) + late list: response, item, Complete (3).
	waitFor(t, "late replies dropped", func() bool { return testutil.ToFloat64(m.LateReplies) == 4 })
	if v, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "fast2"); err != nil || v != "v:fast2" {
		t.Fatalf("fast2 = %q, %v", v, err)
	}
	if got := testutil.ToFloat64(m.Actions.WithLabelValues("Getvar", "timeout")); got != 1 {
		t.Errorf("actions_total{Getvar,timeout} = %v", got)
	}
	// The abandoned list's items did not leak to subscribers.
	select {
	case ev := <-sub.Events():
		t.Fatalf("subscriber got %s", ev)
	default:
	}
	if !c.Status().LoggedIn {
		t.Errorf("connection was dropped by a timeout")
	}
}

func TestGarbageFromServer(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Getvar", func(c *amitest.Conn, req *ami.Message) {
		switch req.Get("Variable") {
		case "garbage":
			_ = c.WriteRaw("this is not AMI\r\n\r\n")
			_ = c.WriteRaw("Event: Broken\r\nno colon in this line\r\n\r\n")
			_ = c.WriteRaw("Event: Huge\r\nData: " + strings.Repeat("x", ami.DefaultMaxLineLength+10) + "\r\n\r\n")
			_ = c.WriteRaw(":\r\n\r\n")
			echoGetvar(c, req)
		case "broken-reply":
			_ = c.WriteRaw("Response: Success\r\nActionID: " + req.ActionID() + "\r\nValue without colon\r\n\r\n")
		}
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	m := ami.MetricsForTest(c)

	v, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "garbage")
	if err != nil || v != "v:garbage" {
		t.Fatalf("Getvar after garbage = %q, %v", v, err)
	}
	// "this is not AMI" and ":" (empty key) between messages.
	if got := testutil.ToFloat64(m.ProtocolErrors.WithLabelValues(ami.ProblemGarbage)); got != 2 {
		t.Errorf("garbage = %v", got)
	}
	// "Event: Broken" with its colon-less line.
	if got := testutil.ToFloat64(m.ProtocolErrors.WithLabelValues(ami.ProblemMalformed)); got != 1 {
		t.Errorf("malformed = %v", got)
	}
	if got := testutil.ToFloat64(m.ProtocolErrors.WithLabelValues(ami.ProblemLineTooLong)); got != 1 {
		t.Errorf("line too long = %v", got)
	}

	// A garbled reply fails its call at once with a clear error.
	start := time.Now()
	_, err = c.Getvar(ctxTimeout(t, 2*time.Second), "", "broken-reply")
	var pe *ami.ProtocolError
	if !errors.As(err, &pe) || pe.Kind != ami.ProblemMalformed || time.Since(start) > time.Second {
		t.Fatalf("garbled reply: %v", err)
	}
	if !c.Status().LoggedIn || srv.Logins() != 1 {
		t.Errorf("client reconnected because of garbage")
	}
	if err := c.Ping(ctxTimeout(t, 2*time.Second)); err != nil {
		t.Errorf("Ping after garbage: %v", err)
	}
}

func TestSlowSubscriber(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Getvar", echoGetvar)
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	m := ami.MetricsForTest(c)

	slow := c.Subscribe(4)
	fast := c.Subscribe(1000)
	const n = 200
	for i := range n {
		srv.Broadcast(ami.NewMessage("Event", "UserEvent", "UserEvent", "e", "N", fmt.Sprint(i)))
	}
	// The reader is not blocked by the slow subscriber.
	if v, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "x"); err != nil || v != "v:x" {
		t.Fatalf("Getvar while a subscriber is stuck: %q, %v", v, err)
	}
	for i := range n {
		ev := nextEvent(t, fast)
		if ev.Get("N") != fmt.Sprint(i) {
			t.Fatalf("fast subscriber: event %d is %s", i, ev)
		}
	}
	if got := testutil.ToFloat64(m.EventsDropped); got != n-4 {
		t.Errorf("events_dropped_total = %v, want %d", got, n-4)
	}
	for i := range 4 {
		if ev := nextEvent(t, slow); ev.Get("N") != fmt.Sprint(i) {
			t.Fatalf("slow subscriber: event %d is %s", i, ev)
		}
	}
	rs := nextEvent(t, slow)
	if rs.Event() != ami.EventResync || !rs.Synthetic() {
		t.Fatalf("slow subscriber: got %s, want Resync", rs)
	}
	select {
	case ev := <-slow.Events():
		t.Fatalf("unexpected %s after Resync", ev)
	default:
	}
	// Once drained, it gets events again (and a later overflow would
	// queue a new Resync).
	srv.Broadcast(ami.NewMessage("Event", "UserEvent", "UserEvent", "e", "N", "again"))
	if ev := nextEvent(t, slow); ev.Get("N") != "again" {
		t.Fatalf("after Resync: %s", ev)
	}
	slow.Close()
	slow.Close() // idempotent
	if _, ok := <-slow.Events(); ok {
		t.Fatalf("closed subscription still delivers")
	}
}

// TestSubscribeTo: a subscription to some events receives only those (in any case) and the
// synthetic ones; a flood of other events does not overflow its small buffer.
func TestSubscribeTo(t *testing.T) {
	srv := amitest.NewServer(t)
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	m := ami.MetricsForTest(c)
	some := c.SubscribeTo(4, "Reload", "queuememberpause")
	for i := range 200 {
		srv.Broadcast(ami.NewMessage("Event", "QueueMemberAdded", "N", fmt.Sprint(i)))
	}
	srv.Broadcast(ami.NewMessage("Event", "QueueMemberPause", "N", "pause"))
	srv.Broadcast(ami.NewMessage("Event", "Reload", "Module", "app_queue.so"))
	if ev := nextEvent(t, some); ev.Event() != "QueueMemberPause" {
		t.Fatalf("first event %s, want QueueMemberPause", ev)
	}
	if ev := nextEvent(t, some); ev.Event() != "Reload" {
		t.Fatalf("second event %s, want Reload", ev)
	}
	if got := testutil.ToFloat64(m.EventsDropped); got != 0 {
		t.Errorf("events_dropped_total = %v, want 0", got)
	}
	srv.Close()
	if ev := nextEvent(t, some); ev.Event() != ami.EventDisconnected || !ev.Synthetic() {
		t.Fatalf("after the server closed: %s, want the synthetic Disconnected", ev)
	}
}

func TestConcurrentDo(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Getvar", func(c *amitest.Conn, req *ami.Message) {
		// Answer out of order, with events in between.
		go func() {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			_ = c.Send(ami.NewMessage("Event", "DeviceStateChange", "Device", "Custom:noise", "State", "BUSY"))
			echoGetvar(c, req)
		}()
	})
	c := startClient(t, srv, nil)
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	sub := c.Subscribe(1000)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("var-%d", i)
			v, err := c.Getvar(ctxTimeout(t, 5*time.Second), "", name)
			if err != nil {
				errs <- err
			} else if v != "v:"+name {
				errs <- fmt.Errorf("%s got %q", name, v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids := map[string]bool{}
	for _, m := range srv.ReceivedAction("Getvar") {
		if ids[m.ActionID()] {
			t.Errorf("duplicate ActionID %s", m.ActionID())
		}
		ids[m.ActionID()] = true
	}
	for range n {
		if ev := nextEvent(t, sub); ev.Event() != "DeviceStateChange" {
			t.Fatalf("subscriber got %s", ev)
		}
	}
	if got := testutil.ToFloat64(ami.MetricsForTest(c).Actions.WithLabelValues("Getvar", "success")); got != n {
		t.Errorf("actions_total{Getvar,success} = %v", got)
	}
}

func TestPingFailureReconnects(t *testing.T) {
	srv, c, sub := unansweredPings(t, 64)
	ev := expectEvents(t, sub, ami.EventDisconnected)[0]
	if !strings.Contains(ev.Get("Reason"), "Pings unanswered") {
		t.Errorf("Disconnected reason %q", ev.Get("Reason"))
	}
	srv.SetPingReplies(true)
	expectEvents(t, sub, ami.EventConnected, ami.EventFullyBooted)
	if srv.Logins() < 2 {
		t.Errorf("logins = %d", srv.Logins())
	}
	// Healthy pings keep the connection.
	logins := srv.Logins()
	time.Sleep(150 * time.Millisecond)
	if srv.Logins() != logins || !c.Status().LoggedIn {
		t.Errorf("reconnected although Pings are answered")
	}
	if len(srv.ReceivedAction("Ping")) < 5 {
		t.Errorf("only %d Pings sent", len(srv.ReceivedAction("Ping")))
	}
	if testutil.ToFloat64(ami.MetricsForTest(c).Reconnects) < 1 {
		t.Errorf("reconnects_total not counted")
	}
}

// TestBusySessionSurvivesUnansweredPings: a Ping that waits unanswered while Asterisk keeps
// sending on the session (replies to the actions ahead of it, events) is a busy session, not a
// dead one, and keeps the connection; once the session falls silent, two unanswered Pings close
// it as before.
func TestBusySessionSurvivesUnansweredPings(t *testing.T) {
	srv, c, sub := unansweredPings(t, 1<<12)

	// Asterisk talks every 5 ms for 15 Ping intervals and never answers a Ping.
	talking := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(talking) {
		srv.Broadcast(amitest.Event(nil, "VarSet", "Variable", "BUSY"))
		time.Sleep(5 * time.Millisecond)
	}
	if pings := len(srv.ReceivedAction("Ping")); pings < 5 {
		t.Fatalf("only %d Pings sent in 15 intervals", pings)
	}
	if srv.Logins() != 1 || !c.Status().LoggedIn {
		t.Fatalf("a session that kept talking was dropped: logins %d, status %+v", srv.Logins(), c.Status())
	}

	// Silence: the next two unanswered Pings close the connection.
	for {
		ev := nextEvent(t, sub)
		if ev.Event() != ami.EventDisconnected {
			continue
		}
		if !strings.Contains(ev.Get("Reason"), "Pings unanswered") {
			t.Errorf("Disconnected reason %q", ev.Get("Reason"))
		}
		break
	}
}

func TestOnReadyAfterFullyBootedOnEveryConnect(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetBooted(false) // Asterisk still booting: Login works, no FullyBooted yet
	ready := make(chan context.Context, 4)
	cfg := testConfig(t, srv)
	cfg.OnReady = func(ctx context.Context) {
		ready <- ctx
		<-ctx.Done() // a long-running resync, stopped when its connection ends
	}
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	expectEvents(t, sub, ami.EventConnected)
	select {
	case <-ready:
		t.Fatal("OnReady ran before FullyBooted")
	case <-time.After(50 * time.Millisecond):
	}
	if st := c.Status(); !st.LoggedIn || st.FullyBooted {
		t.Fatalf("status before boot: %+v", st)
	}
	m := ami.MetricsForTest(c)
	if testutil.ToFloat64(m.FullyBooted) != 0 {
		t.Errorf("fully_booted gauge set before FullyBooted")
	}

	srv.BroadcastFullyBooted()
	expectEvents(t, sub, ami.EventFullyBooted)
	var ctx1 context.Context
	select {
	case ctx1 = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("OnReady not called after FullyBooted")
	}
	waitFor(t, "fully booted status", func() bool { return c.Status().FullyBooted })
	if testutil.ToFloat64(m.FullyBooted) != 1 {
		t.Errorf("fully_booted gauge not set")
	}

	srv.DropAll()
	select {
	case <-ctx1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("OnReady ctx not cancelled when the connection ended")
	}
	// Reconnected to a booted Asterisk: FullyBooted follows the Login.
	expectEvents(t, sub, ami.EventDisconnected, ami.EventConnected, ami.EventFullyBooted)
	select {
	case ctx2 := <-ready:
		if ctx2.Err() != nil {
			t.Error("second OnReady got a dead ctx")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReady not called after reconnect")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run waited for OnReady to return.
	if len(ready) != 0 {
		t.Errorf("OnReady ran %d extra times", len(ready))
	}
}

func TestValuesSurviveRoundTrip(t *testing.T) {
	const tricky = "50%done: a,b,c %s %d %% \"q\" (p) é"
	srv := amitest.NewServer(t)
	stored := map[string]string{}
	var mu sync.Mutex
	srv.Handle("DBPut", func(c *amitest.Conn, req *ami.Message) {
		mu.Lock()
		stored[req.Get("Family")+"/"+req.Get("Key")] = req.Get("Val")
		mu.Unlock()
		_ = c.Reply(req, "Success", "Message", "Updated database successfully")
	})
	srv.Handle("DBGet", func(c *amitest.Conn, req *ami.Message) {
		mu.Lock()
		v := stored[req.Get("Family")+"/"+req.Get("Key")]
		mu.Unlock()
		_ = c.SendList(req, "DBGetComplete", ami.NewMessage("Event", "DBGetResponse", "Family", req.Get("Family"), "Key", req.Get("Key"), "Val", v))
	})
	srv.Handle("Setvar", func(c *amitest.Conn, req *ami.Message) { _ = c.Reply(req, "Success", "Message", "Variable Set") })
	srv.Handle("UserEvent", func(c *amitest.Conn, req *ami.Message) { _ = c.Reply(req, "Success", "Message", "Event Sent") })
	srv.Handle("Originate", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Success", "Message", "Originate successfully queued")
	})
	c := startClient(t, srv, nil)
	ctx := ctxTimeout(t, 2*time.Second)

	if err := c.DBPut(ctx, "F:x", "k%s", tricky); err != nil {
		t.Fatal(err)
	}
	if v, err := c.DBGet(ctx, "F:x", "k%s"); err != nil || v != tricky {
		t.Fatalf("DBGet = %q, %v", v, err)
	}
	if err := c.Setvar(ctx, "", "G", tricky); err != nil {
		t.Fatal(err)
	}
	if err := c.UserEvent(ctx, "Ev", ami.Header{Key: "Data", Value: tricky}); err != nil {
		t.Fatal(err)
	}
	if err := c.Originate(ctx, ami.OriginateSpec{Channel: "Local/wait@test-helpers", Application: "Wait", Data: "1",
		Variables: map[string]string{"V": "a,b"}}); err != nil {
		t.Fatal(err)
	}
	if got := srv.ReceivedAction("DBPut")[0]; got.Get("Val") != tricky || got.Get("Family") != "F:x" || got.Get("Key") != "k%s" {
		t.Errorf("server got DBPut %s", got)
	}
	if got := srv.ReceivedAction("Setvar")[0].Get("Value"); got != tricky {
		t.Errorf("server got Setvar Value %q", got)
	}
	if got := srv.ReceivedAction("UserEvent")[0].Get("Data"); got != tricky {
		t.Errorf("server got UserEvent Data %q", got)
	}
	if got := srv.ReceivedAction("Originate")[0].Values("Variable"); len(got) != 1 || got[0] != `V=a\,b` {
		t.Errorf("server got Originate Variable %q", got)
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	srv := amitest.NewServer(t)
	c := startClient(t, srv, nil)
	ctx := ctxTimeout(t, 2*time.Second)
	inj := "x\r\nAction: Logoff"
	checks := map[string]error{
		"DBPut":     c.DBPut(ctx, "F", "k", inj),
		"Setvar":    c.Setvar(ctx, "", "G", "a\nb"),
		"QueueAdd":  c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "q", Interface: "i", Reason: inj}),
		"UserEvent": c.UserEvent(ctx, "E", ami.Header{Key: "K", Value: inj}),
		"PlayDTMF":  c.PlayDTMF(ctx, "c\r", "1", 0, true),
	}
	_, err := c.Do(ctx, ami.Raw{Name: "Command", Headers: []ami.Header{{Key: "Command", Value: inj}}})
	checks["Raw"] = err
	_, err = c.Do(ctx, ami.Raw{Name: "Ping", Headers: []ami.Header{{Key: "ActionID", Value: "mine"}}})
	checks["Raw with ActionID"] = err
	for name, err := range checks {
		if !errors.Is(err, ami.ErrInvalidHeader) {
			t.Errorf("%s: got %v, want ErrInvalidHeader", name, err)
		}
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range srv.Received() {
		switch m.Get("Action") {
		case "Login", "Ping":
		default:
			t.Errorf("server received %s", m)
		}
		if m.Get("Action") == "Logoff" || m.ActionID() == "mine" {
			t.Errorf("injected action reached the server: %s", m)
		}
	}
	if !c.Status().LoggedIn {
		t.Error("connection lost")
	}
}

func TestRepeatedHeadersAndTypedReplies(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("PresenceState", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Success", "Message", "Presence State", "State", "away", "Subtype", "lunch",
			"Message", "Back at 2pm, maybe", "PresenceMessage", "Back at 2pm, maybe")
	})
	srv.Handle("Command", func(c *amitest.Conn, req *ami.Message) {
		if req.Get("Command") == "bogus" {
			_ = c.Reply(req, "Error", "Message", "Command output follows", "Output", "No such command 'bogus'")
			return
		}
		_ = c.Reply(req, "Success", "Message", "Command output follows", "Output", "line 1", "Output", "  line 2: x,y", "Output", "")
	})
	srv.Handle("ExtensionState", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Success", "Message", "Extension Status", "Exten", req.Get("Exten"), "Context", req.Get("Context"),
			"Hint", "PJSIP/1001&Custom:DND1001,CustomPresence:1001", "Status", "4", "StatusText", "Unavailable")
	})
	srv.Handle("CoreStatus", func(c *amitest.Conn, req *ami.Message) {
		_ = c.Reply(req, "Success", "Message", "Core Status", "CoreStartupDate", "2026-11-05", "CoreStartupTime", "10:41:07",
			"CoreReloadDate", "2026-11-05", "CoreReloadTime", "10:42:00", "CoreCurrentCalls", "3", "CoreProcessedCalls", "17")
	})
	srv.Handle("PresenceStateList", func(c *amitest.Conn, req *ami.Message) {
		_ = c.SendList(req, "PresenceStateListComplete",
			ami.NewMessage("Event", "PresenceStateChange", "Presentity", "CustomPresence:1001", "Status", "dnd", "Subtype", "", "Message", "busy"))
	})
	c := startClient(t, srv, nil)
	ctx := ctxTimeout(t, 2*time.Second)

	ps, err := c.PresenceState(ctx, "CustomPresence:1001")
	if err != nil {
		t.Fatal(err)
	}
	if ps.State != "away" || ps.Subtype != "lunch" || ps.Message != "Back at 2pm, maybe" {
		t.Errorf("presence %+v", ps)
	}
	if got := ps.Raw.Values("Message"); len(got) != 2 || got[0] != "Presence State" || got[1] != "Back at 2pm, maybe" {
		t.Errorf("Message headers %q", got)
	}
	out, err := c.Command(ctx, "core show version")
	if err != nil || len(out) != 3 || out[0] != "line 1" || out[1] != "  line 2: x,y" || out[2] != "" {
		t.Errorf("Command = %q, %v", out, err)
	}
	_, err = c.Command(ctx, "bogus")
	if !strings.Contains(fmt.Sprint(err), "No such command 'bogus'") {
		t.Errorf("Command error %v lacks the output", err)
	}
	es, err := c.ExtensionState(ctx, "1001", "hints")
	if err != nil || es.Status != 4 || es.StatusText != "Unavailable" || es.Context != "hints" {
		t.Errorf("ExtensionState = %+v, %v", es, err)
	}
	cs, err := c.CoreStatus(ctx)
	if err != nil || cs.CurrentCalls != 3 || cs.ProcessedCalls != 17 || cs.StartupDate != "2026-11-05" {
		t.Fatalf("CoreStatus = %+v, %v", cs, err)
	}
	if ts, err := cs.Startup(time.UTC); err != nil || ts.Format(time.DateTime) != "2026-11-05 10:41:07" {
		t.Errorf("Startup = %v, %v", ts, err)
	}
	pl, err := c.PresenceStateList(ctx)
	if err != nil || len(pl) != 1 || pl[0].Provider != "CustomPresence:1001" || pl[0].State != "dnd" || pl[0].Message != "busy" {
		t.Errorf("PresenceStateList = %+v, %v", pl, err)
	}
}

func TestNilRegistererAndLogger(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("Getvar", echoGetvar)
	c := startClient(t, srv, func(cfg *ami.Config) {
		cfg.Registerer = nil
		cfg.Logger = nil
	})
	if _, err := c.Getvar(ctxTimeout(t, 2*time.Second), "", "x"); err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(1)
	for range 5 {
		srv.Broadcast(ami.NewMessage("Event", "UserEvent", "UserEvent", "x"))
	}
	srv.DropAll()
	waitFor(t, "reconnect", func() bool { return srv.Logins() == 2 && c.Status().LoggedIn })
	sub.Close()
}

func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := ami.New(ami.Config{Addr: "h:1", Username: "u", Registerer: reg}); err != nil {
			t.Fatalf("second client on one registry: %v", err)
		}
	}
	n, err := testutil.GatherAndCount(reg, "presenced_ami_connected", "presenced_ami_actions_total")
	if err != nil || n == 0 {
		t.Fatalf("GatherAndCount = %d, %v", n, err)
	}
}

func TestAsteriskInputLimits(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Handle("DBPut", func(c *amitest.Conn, req *ami.Message) { _ = c.Reply(req, "Success") })
	srv.Handle("UserEvent", func(c *amitest.Conn, req *ami.Message) { _ = c.Reply(req, "Success") })
	c := startClient(t, srv, nil)
	ctx := ctxTimeout(t, 2*time.Second)
	// "Val: " + value: 1022 bytes is the longest line Asterisk 22 accepts.
	if err := c.DBPut(ctx, "F", "k", strings.Repeat("x", ami.MaxActionLineLength-5)); err != nil {
		t.Fatalf("longest line refused: %v", err)
	}
	if err := c.DBPut(ctx, "F", "k", strings.Repeat("x", ami.MaxActionLineLength-4)); !errors.Is(err, ami.ErrInvalidHeader) {
		t.Fatalf("over-long line: %v", err)
	}
	hs := make([]ami.Header, ami.MaxActionHeaders-3) // + Action, ActionID, UserEvent
	for i := range hs {
		hs[i] = ami.Header{Key: fmt.Sprintf("H%d", i), Value: "v"}
	}
	if err := c.UserEvent(ctx, "E", hs...); err != nil {
		t.Fatalf("most headers refused: %v", err)
	}
	if err := c.UserEvent(ctx, "E", append(hs, ami.Header{Key: "One", Value: "more"})...); !errors.Is(err, ami.ErrInvalidHeader) {
		t.Fatalf("too many headers: %v", err)
	}
	if n := len(srv.ReceivedAction("DBPut")) + len(srv.ReceivedAction("UserEvent")); n != 2 {
		t.Errorf("server received %d actions, want 2", n)
	}
}

// TestGateKeepsActionsOffTheWire: while Config.Gate refuses, actions fail with ErrGated (safe to
// retry) and never reach the server, while the session stays alive (Ping); once it allows,
// they go through.
func TestGateKeepsActionsOffTheWire(t *testing.T) {
	srv := amitest.NewServer(t)
	var setvars atomic.Int32
	srv.Handle("Setvar", func(c *amitest.Conn, req *ami.Message) {
		setvars.Add(1)
		_ = c.Send(ami.NewMessage("Response", "Success", "ActionID", req.ActionID()))
	})
	var closed atomic.Bool
	closed.Store(true)
	c := startClient(t, srv, func(cfg *ami.Config) {
		cfg.Gate = func() error {
			if closed.Load() {
				return errors.New("not the leader")
			}
			return nil
		}
	})
	waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
	err := c.Setvar(ctxTimeout(t, 2*time.Second), "", "X", "1")
	if !errors.Is(err, ami.ErrGated) || !ami.SafeToRetry(err) || !strings.Contains(err.Error(), "not the leader") {
		t.Fatalf("gated Setvar: %v", err)
	}
	if err := c.Ping(ctxTimeout(t, 2*time.Second)); err != nil {
		t.Fatalf("Ping while gated: %v", err)
	}
	if n := setvars.Load(); n != 0 {
		t.Fatalf("the server got %d Setvar while gated", n)
	}
	closed.Store(false)
	if err := c.Setvar(ctxTimeout(t, 2*time.Second), "", "X", "1"); err != nil || setvars.Load() != 1 {
		t.Fatalf("Setvar once allowed: %v, server got %d", err, setvars.Load())
	}
}
