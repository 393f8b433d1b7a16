package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/webhook"
)

var (
	alice = &presence.User{ID: "alice", Extension: "1001"}
	clock = time.Date(2026, 11, 5, 10, 41, 7, 0, time.UTC)
)

// receiver is an httptest server that records every request it gets.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

type recorded struct {
	method, path, contentType string
	body                      []byte
}

func newReceiver(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.inFlight.Add(1)
		defer rc.inFlight.Add(-1)
		for {
			m := rc.maxIn.Load()
			if n <= m || rc.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), b})
		rc.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func (rc *receiver) last(t *testing.T) recorded {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.requests) == 0 {
		t.Fatal("the receiver got no request")
	}
	return rc.requests[len(rc.requests)-1]
}

func status(code int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func newConcern(t *testing.T, mod func(*webhook.Options)) (*webhook.Concern, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var o webhook.Options // zero: the defaults
	o.Registerer = reg
	o.Now = func() time.Time { return clock }
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mod != nil {
		mod(&o)
	}
	c, err := webhook.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func op(url, timeout string, ev *presence.SwitchEvent) presence.Op {
	return presence.Op{Kind: presence.OpWebhook, Webhook: &presence.Webhook{URL: url, Timeout: timeout}, Event: ev}
}

func calls(t *testing.T, reg *prometheus.Registry, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "presenced_webhook_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	t.Fatalf("no presenced_webhook_calls_total{result=%q}", result)
	return 0
}

func TestNameKindsObserve(t *testing.T) {
	c, _ := newConcern(t, nil)
	if c.Name() != "webhook" {
		t.Errorf("Name = %q", c.Name())
	}
	if k := c.Kinds(); len(k) != 1 || k[0] != presence.OpWebhook {
		t.Errorf("Kinds = %v", k)
	}
	want := map[presence.UserID]*presence.Target{"alice": presence.NewTarget()}
	if err := c.Observe(context.Background(), want, want); err != nil {
		t.Errorf("Observe: %v", err)
	}
	if _, err := webhook.New(webhook.Options{MaxInFlight: -1}); err == nil || !strings.Contains(err.Error(), "MaxInFlight") {
		t.Errorf("New with negative MaxInFlight: %v", err)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		body      string
		want      presence.Result
		errSubstr string
		metric    string
	}{
		{"200", 200, "ok", presence.ResultApplied, "", "success"},
		{"201", 201, "", presence.ResultApplied, "", "success"},
		{"204", 204, "", presence.ResultApplied, "", "success"},
		{"500 with reason", 500, "database down\n", presence.ResultFailed, `status 500 Internal Server Error: "database down"`, "status"},
		{"404", 404, "", presence.ResultFailed, "status 404 Not Found", "status"},
		{"redirect not followed", 302, "", presence.ResultFailed, "status 302 Found", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, status(tt.code, tt.body))
			c, reg := newConcern(t, nil)
			out := c.Apply(context.Background(), alice, []presence.Op{op(rc.URL+"/hook", "", nil)})
			if len(out) != 1 || out[0].Result != tt.want {
				t.Fatalf("outcomes %+v, want one %s", out, tt.want)
			}
			if !strings.Contains(out[0].Error, tt.errSubstr) {
				t.Errorf("error %q lacks %q", out[0].Error, tt.errSubstr)
			}
			if n := rc.count(); n != 1 {
				t.Errorf("receiver got %d requests, want exactly 1 (no retries, no redirects)", n)
			}
			if r := rc.last(t); r.method != http.MethodPost || r.path != "/hook" || r.contentType != "application/json" {
				t.Errorf("request %s %s %s", r.method, r.path, r.contentType)
			}
			if n := calls(t, reg, tt.metric); n != 1 {
				t.Errorf("calls_total{result=%s} = %d, want 1", tt.metric, n)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select { // longer than the timeout, but let the server close when the client gives up
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c, reg := newConcern(t, nil)
	start := time.Now()
	out := c.Apply(context.Background(), alice, []presence.Op{op(rc.URL, "200ms", nil)})
	took := time.Since(start)
	if out[0].Result != presence.ResultFailed || !strings.Contains(out[0].Error, "no answer within 200ms") {
		t.Fatalf("outcome %+v", out[0])
	}
	if took < 200*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("Apply took %v, want about the 200ms timeout", took)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	if n := calls(t, reg, "timeout"); n != 1 {
		t.Errorf("calls_total{result=timeout} = %d", n)
	}
}

func TestTimeouts(t *testing.T) {
	// Valid timeouts make the call; invalid ones fail the operation without a request.
	tests := []struct {
		timeout   string
		want      presence.Result
		errSubstr string
	}{
		{"", presence.ResultApplied, ""},
		{"1s", presence.ResultApplied, ""},
		{"5m", presence.ResultApplied, ""},
		{"0s", presence.ResultFailed, `timeout "0s" is not a positive duration`},
		{"-1s", presence.ResultFailed, "not a positive duration"},
		{"soon", presence.ResultFailed, "not a positive duration"},
	}
	rc := newReceiver(t, status(204, ""))
	for _, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			c, _ := newConcern(t, nil)
			before := rc.count()
			out := c.Apply(context.Background(), alice, []presence.Op{op(rc.URL, tt.timeout, nil)})
			if out[0].Result != tt.want || !strings.Contains(out[0].Error, tt.errSubstr) {
				t.Fatalf("outcome %+v, want %s with %q", out[0], tt.want, tt.errSubstr)
			}
			wantReq := 0
			if tt.want == presence.ResultApplied {
				wantReq = 1
			}
			if n := rc.count() - before; n != wantReq {
				t.Errorf("%d requests, want %d", n, wantReq)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	at := time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		value     *presence.SwitchEvent
		want      *webhook.Payload // nil: the operation fails without a request
		errSubstr string
	}{
		{"full payload from the event", &presence.SwitchEvent{User: "alice", Extension: "1001", From: "available", To: "meeting",
			Info: "room 4, floor 2", Source: presence.SourceFeatureCode, Actor: "alice", At: at},
			&webhook.Payload{User: "alice", Extension: "1001", From: "available", To: "meeting",
				Info: "room 4, floor 2", Source: "feature_code", Actor: "alice", At: at}, ""},
		{"user, extension and at filled in", &presence.SwitchEvent{To: "meeting"}, &webhook.Payload{User: "alice", Extension: "1001", To: "meeting", At: clock}, ""},
		{"no event", nil, &webhook.Payload{User: "alice", Extension: "1001", At: clock}, ""},
		{"another user's event", &presence.SwitchEvent{User: "bob", To: "meeting"}, nil, `payload is for user "bob", not "alice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, status(200, ""))
			c, _ := newConcern(t, nil)
			out := c.Apply(context.Background(), alice, []presence.Op{op(rc.URL, "", tt.value)})
			if tt.want == nil {
				if out[0].Result != presence.ResultFailed || !strings.Contains(out[0].Error, tt.errSubstr) {
					t.Fatalf("outcome %+v, want failed with %q", out[0], tt.errSubstr)
				}
				if n := rc.count(); n != 0 {
					t.Errorf("%d requests for a bad payload", n)
				}
				return
			}
			if out[0].Result != presence.ResultApplied {
				t.Fatalf("outcome %+v", out[0])
			}
			var got webhook.Payload
			dec := json.NewDecoder(strings.NewReader(string(rc.last(t).body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %s: %v", rc.last(t).body, err)
			}
			if got != *tt.want {
				t.Errorf("payload %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestNoRequest(t *testing.T) {
	// A listener that is closed at once: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/hook"
	l.Close()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	rc := newReceiver(t, status(200, ""))

	tests := []struct {
		name      string
		ctx       context.Context
		op        presence.Op
		errSubstr string
		metric    string
	}{
		{"connection refused", context.Background(), op(refused, "1s", nil), "connection refused", "error"},
		{"not http", context.Background(), op("ftp://example.com/x", "", nil), "is not an http(s) URL", "error"},
		{"no host", context.Background(), op("http:///x", "", nil), "is not an http(s) URL", "error"},
		{"no webhook", context.Background(), presence.Op{Kind: presence.OpWebhook}, "operation has no webhook", "error"},
		{"ctx done", cancelled, op(rc.URL, "", nil), "context canceled", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reg := newConcern(t, nil)
			out := c.Apply(tt.ctx, alice, []presence.Op{tt.op})
			if len(out) != 1 || out[0].Result != presence.ResultFailed || !strings.Contains(out[0].Error, tt.errSubstr) {
				t.Fatalf("outcomes %+v, want failed with %q", out, tt.errSubstr)
			}
			if n := calls(t, reg, tt.metric); n != 1 {
				t.Errorf("calls_total{result=%s} = %d", tt.metric, n)
			}
		})
	}
	if n := rc.count(); n != 0 {
		t.Errorf("receiver got %d requests after ctx was done", n)
	}

	c, _ := newConcern(t, nil)
	out := c.Apply(context.Background(), alice, []presence.Op{{Kind: presence.OpDBPut, Key: "F/k"}})
	if out[0].Result != presence.ResultFailed || !strings.Contains(out[0].Error, "cannot apply db_put") {
		t.Errorf("db_put outcome %+v", out[0])
	}
}

func TestSecretsStayOutOfOutcomes(t *testing.T) {
	rc := newReceiver(t, status(503, ""))
	c, _ := newConcern(t, nil)
	u := strings.Replace(rc.URL, "http://", "http://user:hunter2@", 1) + "/hook?token=s3cret#frag"
	out := c.Apply(context.Background(), alice, []presence.Op{op(u, "", nil)})
	if out[0].Result != presence.ResultFailed || strings.Contains(out[0].Error, "s3cret") || strings.Contains(out[0].Error, "hunter2") {
		t.Errorf("outcome %+v", out[0])
	}
	if !strings.Contains(out[0].Error, rc.URL+"/hook") {
		t.Errorf("error %q does not name the webhook", out[0].Error)
	}
}

func TestErrorBodyIsBounded(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		big := strings.Repeat("x", 1<<20)
		for range 8 { // 8 MiB
			if _, err := io.WriteString(w, big); err != nil {
				return
			}
		}
	})
	c, _ := newConcern(t, nil)
	out := c.Apply(context.Background(), alice, []presence.Op{op(rc.URL, "5s", nil)})
	if out[0].Result != presence.ResultFailed || len(out[0].Error) > 400 || !strings.Contains(out[0].Error, "...") {
		t.Errorf("outcome error of %d bytes: %.100s", len(out[0].Error), out[0].Error)
	}
}

func TestOrderAndConcurrency(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(500)
		}
	})
	c, reg := newConcern(t, func(o *webhook.Options) { o.MaxInFlight = 3 })
	const users = 20
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			u := &presence.User{ID: presence.UserID("u" + string(rune('a'+i))), Extension: "9300"}
			ops := []presence.Op{op(rc.URL+"/ok", "", nil), op(rc.URL+"/fail", "", nil), op(rc.URL+"/ok", "", nil)}
			out := c.Apply(context.Background(), u, ops)
			want := []presence.Result{presence.ResultApplied, presence.ResultFailed, presence.ResultApplied}
			for j := range out {
				if out[j].Result != want[j] || out[j].Op.Webhook != ops[j].Webhook {
					t.Errorf("user %s op %d: %+v, want %s", u.ID, j, out[j], want[j])
				}
			}
		})
	}
	wg.Wait()
	if n := rc.count(); n != 3*users {
		t.Errorf("%d requests, want %d", n, 3*users)
	}
	if m := rc.maxIn.Load(); m > 3 {
		t.Errorf("%d calls in flight at once, MaxInFlight is 3", m)
	}
	if s, f := calls(t, reg, "success"), calls(t, reg, "status"); s != 2*users || f != users {
		t.Errorf("calls_total success %d status %d", s, f)
	}
}
