package web

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/presence"
)

// The web app's benchmarks (docs/BENCHMARKS.md, "Web app"): 1,000 users over an in-memory PBX
// and an in-process Redis (miniredis), so that the figures are presenced's own work: page
// rendering on the server, and the fan-out of one switch to 1,000 event streams.

const benchUsers = 1000

func benchApp(tb testing.TB) *app {
	tb.Helper()
	extra := make([]presence.User, benchUsers-3)
	for i := range extra {
		extra[i] = presence.User{ID: presence.UserID(fmt.Sprintf("u%04d", i)), Extension: fmt.Sprint(4000 + i)}
	}
	a := newAppWith(tb, extra, nil)
	ctx := context.Background()
	for i, u := range a.engine.Catalog().Users {
		p := []string{"available", "lunch", "secret"}[i%3]
		if _, err := a.engine.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: p, Info: "info " + u.Extension, Source: presence.SourceAPI}); err != nil {
			tb.Fatal(err)
		}
	}
	return a
}

// session opens a session for a user without the password's hash (which benchmarks would
// otherwise measure) and returns its cookie.
func (a *app) session(tb testing.TB, id presence.UserID) *http.Cookie {
	tb.Helper()
	u, _ := a.engine.Catalog().User(id)
	s, err := a.acc.Start(context.Background(), account.Identity{User: u})
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Cookie{Name: sessionCookie, Value: s.ID}
}

// benchPage renders a page in the handler (no network) and reports p50 and p99.
func benchPage(b *testing.B, path string) {
	a := benchApp(b)
	cookie := a.session(b, "alice")
	var ds []time.Duration
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		start := time.Now()
		a.h.ServeHTTP(w, r)
		ds = append(ds, time.Since(start))
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", path, w.Code)
		}
	}
	b.ReportMetric(float64(pct(ds, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(ds, 0.99).Microseconds())/1000, "p99-ms")
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkStatusPage: alice's status page among 1,000 users.
//
//	go test -run '^$' -bench 'Page$' -benchtime 2000x ./web
func BenchmarkStatusPage(b *testing.B) { benchPage(b, "/") }

// BenchmarkColleaguesPage: the colleagues page listing 1,000 users.
func BenchmarkColleaguesPage(b *testing.B) { benchPage(b, "/colleagues") }

// TestEventFanout: browsers hold /events open; each of the switches must reach all of them
// (within 10 s: a bound for a stuck stream, not a judgement of speed). It logs the delay from
// the switch asked for (Switch called; it returns once applied) to each stream's copy, and the
// memory the streams take. 100 streams and 5 switches in the tests. With
// PRESENCED_WEB_BENCH=1 it is the benchmark of docs/BENCHMARKS.md: 1,000 streams and 20
// switches, and it fails when the p99 delay is over the goal of 1 s (the tests judge no time:
// they run on loaded machines):
//
//	PRESENCED_WEB_BENCH=1 go test -count=1 -run TestEventFanout -v ./web
func TestEventFanout(t *testing.T) {
	nStreams, rounds := 100, 5
	bench := os.Getenv("PRESENCED_WEB_BENCH") == "1"
	if bench {
		nStreams, rounds = benchUsers, 20
	}
	a := benchApp(t)
	users := a.engine.Catalog().Users
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	type stream struct {
		got chan time.Time
	}
	tr := &http.Transport{MaxIdleConnsPerHost: nStreams}
	client := &http.Client{Transport: tr}
	streams := make([]*stream, nStreams)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	for i := range streams {
		s := &stream{got: make(chan time.Time, 64)}
		streams[i] = s
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+"/events", nil)
		req.AddCookie(a.session(t, users[i].ID))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %v", i, err)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"user":"bob"`) {
					s.got <- time.Now()
				}
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.h.Clients() < nStreams {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open", a.h.Clients())
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	var delays []time.Duration
	profiles := []string{"lunch", "available"}
	for round := range rounds {
		asked := time.Now()
		_, err := a.engine.Switch(ctx, presence.SwitchRequest{User: "bob", Profile: profiles[round%2], Info: fmt.Sprint("round ", round), Source: presence.SourceAPI})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range streams {
			select {
			case at := <-s.got:
				delays = append(delays, at.Sub(asked))
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: stream %d saw nothing within 10s", round, i)
			}
		}
	}
	t.Logf("%d streams × %d switches: delay from the switch asked for to the stream p50 %v, p99 %v, max %v",
		nStreams, rounds, pct(delays, 0.5).Round(100*time.Microsecond), pct(delays, 0.99).Round(100*time.Microsecond), slices.Max(delays).Round(100*time.Microsecond))
	t.Logf("memory of %d open streams (server and benchmark clients in one process): heap %+.1f MiB, stacks %+.1f MiB, goroutines %+d",
		nStreams, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20),
		float64(int64(after.StackInuse)-int64(before.StackInuse))/(1<<20), runtime.NumGoroutine()-goroutines)
	if p99 := pct(delays, 0.99); bench && p99 > time.Second {
		t.Errorf("p99 %v is over the goal of 1s", p99)
	}
}
