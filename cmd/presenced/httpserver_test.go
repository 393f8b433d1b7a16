package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/internal/httpserve"
)

// The HTTP server's limits (issue 10): idle and slow clients are cut at their timeouts, the
// connections over http.max_connections are refused while the others are served, and a slow
// client during the shutdown costs no acknowledged switch.

// dialDaemon opens a raw TCP connection to the daemon's HTTP listener.
func dialDaemon(t *testing.T, d *daemonUnderTest) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(d.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads c until the server closes it and returns when that was, measured from
// since. Whatever the server answered first is returned too. It gives up after within.
func waitClosed(c net.Conn, since time.Time, within time.Duration) (time.Duration, string, error) {
	c.SetReadDeadline(time.Now().Add(within))
	got, err := io.ReadAll(c) // nil at EOF
	took := time.Since(since)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return took, string(got), fmt.Errorf("still open after %v", took.Round(time.Millisecond))
	}
	return took, string(got), nil // EOF, or a reset: closed either way
}

// TestIdleConnectionsClosedOnTime: 100 connections that made one unauthenticated request and
// kept the connection, and 100 that never sent a byte, are all closed by presenced at
// http.idle_timeout and http.read_header_timeout respectively.
func TestIdleConnectionsClosedOnTime(t *testing.T) {
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	cfg.HTTP.IdleTimeout = 2 * time.Second
	cfg.HTTP.ReadHeaderTimeout = time.Second
	d := startDaemon(t, cfg)
	const n = 100
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		kept     []time.Duration
		silent   []time.Duration
		problems []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for i := range 2 * n {
		c := dialDaemon(t, d)
		wg.Go(func() {
			if i%2 == 1 {
				// Never sends a byte: the header deadline runs from the connection's start.
				took, _, err := waitClosed(c, time.Now(), 10*time.Second)
				if err != nil {
					fail("silent connection %d: %v", i, err)
					return
				}
				mu.Lock()
				silent = append(silent, took)
				mu.Unlock()
				return
			}
			// One unauthenticated request, answered 401 with the connection kept alive.
			if _, err := io.WriteString(c, "GET /api/v1/presence HTTP/1.1\r\nHost: presenced\r\n\r\n"); err != nil {
				fail("connection %d: write: %v", i, err)
				return
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				fail("connection %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered := time.Now()
			if resp.StatusCode != http.StatusUnauthorized || resp.Close {
				fail("connection %d: %d, close %v; want 401 on a kept-alive connection", i, resp.StatusCode, resp.Close)
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = br.ReadByte()
			took := time.Since(answered)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				fail("kept-alive connection %d still open after %v", i, took.Round(time.Millisecond))
				return
			}
			mu.Lock()
			kept = append(kept, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	check := func(what string, took []time.Duration, timeout time.Duration) {
		if len(took) != n {
			t.Errorf("%s: %d of %d measured", what, len(took), n)
			return
		}
		lo, hi := took[0], took[0]
		for _, d := range took {
			lo, hi = min(lo, d), max(hi, d)
		}
		t.Logf("%d %s connections closed after %v to %v (timeout %v)", n, what, lo.Round(time.Millisecond), hi.Round(time.Millisecond), timeout)
		if lo < timeout-200*time.Millisecond || hi > timeout+1500*time.Millisecond {
			t.Errorf("%s connections closed after %v to %v, want within [%v, %v]", what, lo, hi, timeout-200*time.Millisecond, timeout+1500*time.Millisecond)
		}
	}
	check("kept-alive idle", kept, cfg.HTTP.IdleTimeout)
	check("silent", silent, cfg.HTTP.ReadHeaderTimeout)
	if open := d.metric(t, "presenced_http_connections_open"); open != 1 {
		t.Errorf("presenced_http_connections_open = %v once they are closed, want 1 (this request's)", open)
	}
}

// TestSlowHeaderAndSlowBodyAreCut: a client that sends its headers a byte at a time is cut at
// http.read_header_timeout; headers over http.max_header_bytes are answered 431; a client that
// sends its body (with a valid token) a byte at a time is cut at http.read_timeout, and its
// switch does not happen.
func TestSlowHeaderAndSlowBodyAreCut(t *testing.T) {
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.HTTP.ReadHeaderTimeout = time.Second
	cfg.HTTP.ReadTimeout = 3 * time.Second
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	d.switchTo(t, "alice", "available", "")

	// trickle writes s a byte every 200 ms until it is written or the connection fails.
	trickle := func(c net.Conn, s string) {
		go func() {
			for i := range len(s) {
				if _, err := c.Write([]byte{s[i]}); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}

	t.Run("slow header", func(t *testing.T) {
		c := dialDaemon(t, d)
		start := time.Now()
		trickle(c, "GET /healthz HTTP/1.1\r\nHost: presenced\r\nX-Slow: "+strings.Repeat("a", 100)+"\r\n\r\n")
		took, answer, err := waitClosed(c, start, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("slow header cut after %v (http.read_header_timeout %v); answer %q", took.Round(time.Millisecond), cfg.HTTP.ReadHeaderTimeout, answer)
		if took > cfg.HTTP.ReadHeaderTimeout+1500*time.Millisecond {
			t.Errorf("slow header cut after %v, want within %v of http.read_header_timeout", took, 1500*time.Millisecond)
		}
		if strings.HasPrefix(answer, "HTTP/1.1 200") {
			t.Errorf("the slow header was answered: %q", answer)
		}
	})

	t.Run("headers over http.max_header_bytes", func(t *testing.T) {
		c := dialDaemon(t, d)
		// net/http reads up to 4 KiB more than MaxHeaderBytes before it gives up.
		big := strings.Repeat("a", cfg.HTTP.MaxHeaderBytes+8<<10)
		go io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: presenced\r\nX-Big: "+big+"\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d bytes of headers: %d, want 431", len(big), resp.StatusCode)
		}
		small := dialDaemon(t, d)
		io.WriteString(small, "GET /healthz HTTP/1.1\r\nHost: presenced\r\nX-Big: "+big[:cfg.HTTP.MaxHeaderBytes/2]+"\r\n\r\n")
		small.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(small), nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%d bytes of headers: %v %v, want 200", cfg.HTTP.MaxHeaderBytes/2, resp, err)
		}
	})

	t.Run("slow body with a valid token", func(t *testing.T) {
		c := dialDaemon(t, d)
		body := `{"profile": "lunch", "info": "` + strings.Repeat("x", 80) + `"}`
		start := time.Now()
		head := "PUT /api/v1/users/alice/profile HTTP/1.1\r\nHost: presenced\r\nAuthorization: Bearer " + testToken("admin") + "\r\n" +
			"Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		trickle(c, body)
		took, answer, err := waitClosed(c, start, 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		status, _, _ := strings.Cut(answer, "\r\n")
		t.Logf("slow body cut after %v (http.read_timeout %v); answered %q", took.Round(time.Millisecond), cfg.HTTP.ReadTimeout, status)
		if took > cfg.HTTP.ReadTimeout+1500*time.Millisecond {
			t.Errorf("slow body cut after %v, want within %v of http.read_timeout", took, 1500*time.Millisecond)
		}
		if strings.HasPrefix(answer, "HTTP/1.1 200") {
			t.Errorf("the slow body's switch was answered 200: %q", status)
		}
		code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("admin"), nil)
		if code != http.StatusOK || st["profile"] != "available" {
			t.Errorf("alice after the cut request: %d %v, want still available", code, st["profile"])
		}
	})
}

// TestConnectionsOverTheCapAreRefused: with http.max_connections held by 7 idle connections and
// one client's kept-alive connection, further connections are refused at once with 503 and
// Retry-After (not queued), counted in presenced_http_connections_refused_total, while the
// client that holds a connection keeps being served (a switch lands on the PBX). Once the idle
// connections go, new clients are served again.
func TestConnectionsOverTheCapAreRefused(t *testing.T) {
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.HTTP.MaxConnections = 8
	cfg.HTTP.ReadHeaderTimeout = 30 * time.Second // the idle holders stay for the whole test
	cfg.HTTP.ReadTimeout = 30 * time.Second
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	http.DefaultClient.CloseIdleConnections() // waitReady's connection
	p := &pbx{t: t, c: newProbe(t).c}

	// The client that is served throughout: one kept-alive connection.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	do := func(method, path string, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken("admin"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	metric := func(name string) float64 {
		t.Helper()
		_, body := do(http.MethodGet, "/metrics", "")
		return metricIn(t, body, name)
	}
	if code, _ := do(http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	// Alice is logged in to her queues, whatever an earlier test left: the switch at the cap
	// below pauses her there.
	if code, body := do(http.MethodPut, "/api/v1/users/alice/profile", `{"profile": "available"}`); code != http.StatusOK {
		t.Fatalf("switch to available: %d %s", code, body)
	}
	// Seven silent connections take the places left.
	eventually(t, 5*time.Second, "only the client's connection open", func() bool {
		return metric("presenced_http_connections_open") == 1
	})
	var holders []net.Conn
	for range cfg.HTTP.MaxConnections - 1 {
		holders = append(holders, dialDaemon(t, d))
	}
	eventually(t, 5*time.Second, "the cap reached", func() bool {
		return metric("presenced_http_connections_open") == float64(cfg.HTTP.MaxConnections)
	})

	const extra = 20
	for i := range extra {
		c := dialDaemon(t, d)
		start := time.Now()
		// Half of them have sent their request already, half wait for the answer.
		if i%2 == 0 {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: presenced\r\n\r\n")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d over the cap: %v, want a 503", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("connection %d over the cap: %d, Retry-After %q; want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if took, _, err := waitClosed(c, start, 5*time.Second); err != nil {
			t.Fatalf("connection %d over the cap: %v", i, err)
		} else if i == 0 {
			t.Logf("refused and closed after %v", took.Round(time.Millisecond))
		}
	}
	if v := metric("presenced_http_connections_refused_total"); v != extra {
		t.Errorf("presenced_http_connections_refused_total = %v, want %d", v, extra)
	}

	// The client holding a connection is served: a switch lands on the PBX.
	code, body := do(http.MethodPut, "/api/v1/users/alice/profile", `{"profile": "lunch"}`)
	if code != http.StatusOK {
		t.Fatalf("switch at the cap: %d %s", code, body)
	}
	const iface = "Local/1001@presenced-queue-member/n"
	for _, q := range []string{"support", "sales"} {
		if m := p.member(q, iface); !pausedFor(m, "Lunch") {
			t.Errorf("after the switch at the cap: %s member %+v, want paused for Lunch", q, m)
		}
	}

	// The silent connections leave; a new client is served.
	for _, c := range holders {
		c.Close()
	}
	eventually(t, 5*time.Second, "the holders' places free", func() bool {
		return metric("presenced_http_connections_open") == 1
	})
	if code, _ := d.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("a new client after the holders left: %d", code)
	}
}

// TestSlowClientDuringShutdownLosesNothing: with the embedded store (snapshots an hour apart,
// so only the final one can hold a switch), presenced is stopped while a client with a valid
// token holds a request open by sending its body slowly, another client's switch is still
// arriving and an idle connection is open. The switch that arrives within http.shutdown_timeout
// is carried out on the PBX and acknowledged, the slow client is cut at http.shutdown_timeout,
// presenced stops within shutdown_timeout, the final snapshot holds the acknowledged switch, and
// a presenced restarted on that snapshot knows it: it puts back the DND key deleted by hand
// while it was down.
func TestSlowClientDuringShutdownLosesNothing(t *testing.T) {
	u := driftUser{id: "http-shutdown", ext: "2690"}
	var cfg *Config
	d, p := startDriftDaemon(t, u, "", func(c *Config) {
		c.Redis.URL = ""
		c.Store.SnapshotPath = t.TempDir() + "/store.json"
		c.Store.SnapshotInterval = time.Hour
		c.HTTP.ReadTimeout = time.Minute // the slow body is not cut before the shutdown
		c.HTTP.ShutdownTimeout = 2 * time.Second
		cfg = c
	})
	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "lunch", "")
	if _, ok := p.db("DND", u.ext); ok {
		t.Fatalf("DND/%s set before the test", u.ext)
	}

	// send writes the head of a switch of u to profile and the first n bytes of its body.
	send := func(profile string, n int) (net.Conn, string) {
		c := dialDaemon(t, d)
		body := `{"profile": "` + profile + `"}`
		if _, err := io.WriteString(c, "PUT /api/v1/users/"+u.id+"/profile HTTP/1.1\r\nHost: presenced\r\nAuthorization: Bearer "+u.token()+
			"\r\nContent-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body[:n]); err != nil {
			t.Fatal(err)
		}
		return c, body[n:]
	}
	slow, _ := send("available", 5)                     // never finishes its body
	inTime, rest := send("dnd", len(`{"profile": "dn`)) // finishes it once the shutdown began
	idle := dialDaemon(t, d)
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: presenced\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("idle client's request: %v %v", resp, err)
	}
	time.Sleep(200 * time.Millisecond) // both switches are in their handlers, reading the body

	start := time.Now()
	time.AfterFunc(300*time.Millisecond, func() { io.WriteString(inTime, rest) })
	d.stop(t) // fails the test unless it stops cleanly within 10s
	took := time.Since(start)
	t.Logf("stopped in %v with a slow client (shutdown_timeout %v, http.shutdown_timeout %v)", took.Round(time.Millisecond),
		cfg.ShutdownTimeout, cfg.HTTP.ShutdownTimeout)
	if took > cfg.ShutdownTimeout {
		t.Errorf("shutdown took %v, more than shutdown_timeout %v", took, cfg.ShutdownTimeout)
	}
	inTime.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(inTime), nil)
	if err != nil {
		t.Fatalf("the switch that arrived during the shutdown: %v, want its answer", err)
	}
	var res map[string]any
	json.NewDecoder(resp.Body).Decode(&res)
	if resp.StatusCode != http.StatusOK || res["in_sync"] != true {
		t.Fatalf("the switch that arrived during the shutdown: %d %v, want 200 in sync", resp.StatusCode, res)
	}
	if v, ok := p.db("DND", u.ext); !ok || v != "YES" {
		t.Errorf("DND/%s = %q (%v) after the acknowledged switch to dnd", u.ext, v, ok)
	}
	for name, c := range map[string]net.Conn{"slow": slow, "idle": idle} {
		if _, answer, err := waitClosed(c, start, time.Second); err != nil {
			t.Errorf("%s client: %v after the shutdown", name, err)
		} else if strings.HasPrefix(answer, "HTTP/1.1 200") {
			t.Errorf("%s client answered 200 after the shutdown began: %q", name, answer)
		}
	}

	// The final snapshot holds the acknowledged switch.
	raw, err := os.ReadFile(cfg.Store.SnapshotPath)
	if err != nil {
		t.Fatalf("no snapshot after the shutdown: %v", err)
	}
	var snap struct {
		Keys []struct {
			Key  string            `json:"key"`
			Hash map[string]string `json:"hash"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &snap); err != nil {
		t.Fatal(err)
	}
	var state struct {
		Profile string `json:"profile"`
	}
	for _, k := range snap.Keys {
		if k.Key == "presenced:user:"+u.id {
			json.Unmarshal([]byte(k.Hash["state"]), &state)
		}
	}
	if state.Profile != "dnd" {
		t.Fatalf("snapshot: %s is in %q, want dnd (the switch acknowledged during the shutdown)", u.id, state.Profile)
	}

	// While presenced is down an admin deletes the DND key; the restarted presenced, which
	// knows the user is in dnd from the snapshot alone, puts it back.
	if err := p.c.DBDel(p.ctx(), "DND", u.ext); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, *cfg)
	d2.waitReady(t, 15*time.Second)
	eventually(t, 10*time.Second, "DND/"+u.ext+" back", func() bool {
		v, ok := p.db("DND", u.ext)
		return ok && v == "YES"
	})
	code, st := d2.call(t, http.MethodGet, "/api/v1/users/"+u.id, testToken("admin"), nil)
	if code != http.StatusOK || st["profile"] != "dnd" {
		t.Errorf("restarted: %s is %d %v, want dnd", u.id, code, st["profile"])
	}
	d2.switchTo(t, u.id, "available", "") // DND off again for the next run
}

// TestHandlerOutlivesReadTimeout: http.read_timeout bounds reading the request, not the
// handler: a handler that takes longer than it (a switch whose PBX read takes several
// seconds) keeps its request's context and answers.
func TestHandlerOutlivesReadTimeout(t *testing.T) {
	const readTimeout = time.Second
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			fmt.Fprint(w, "cancelled")
		case <-time.After(readTimeout + 500*time.Millisecond):
			fmt.Fprint(w, "not cancelled")
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := HTTPConfig{ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout, WriteTimeout: 10 * time.Second,
		IdleTimeout: 10 * time.Second, MaxConnections: 8, MaxHeaderBytes: 4096}
	hs := httpserve.New(cfg.limits(1024), ln, handler, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	go hs.Serve()
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stopped at once: the listener and every connection closed
		hs.Stop(ctx)
	}()
	for _, tc := range []struct{ method, body string }{
		{http.MethodGet, ""},
		{http.MethodPut, `{"profile": "lunch"}`},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+ln.Addr().String()+"/api/v1/users/alice/profile", strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "not cancelled" {
			t.Errorf("%s: %d, handler's context %q; want 200, not cancelled", tc.method, resp.StatusCode, got)
		}
	}
}
