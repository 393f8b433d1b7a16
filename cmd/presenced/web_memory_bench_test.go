package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// BenchmarkWebStreamsMemory measures the memory a presenced process takes for 1,000 open
// pages: presenced (built and run as a process of its own, with 1,000 users, against the lab's
// Asterisk and Redis, as lab.StartPresenced runs it) is read before and after 1,000 clients of this benchmark open the web
// app's event stream (/events, each with its own user's session), at rest: its resident set
// (/proc/<pid>/status VmRSS) and what its /metrics say of the Go heap, stacks and goroutines.
// Then one switch must reach every stream (the delay to each is reported too). The clients
// live in the benchmark's process, so only presenced's side is measured. docs/BENCHMARKS.md,
// "Web app":
//
//	go test -run '^$' -bench WebStreamsMemory -benchtime 1x ./cmd/presenced
func BenchmarkWebStreamsMemory(b *testing.B) {
	const users, streams = 1000, 1000
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := lab.BuildPresenced(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	type user struct {
		ID     string
		N, Ext int
	}
	ids, us := make([]string, users), make([]user, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("mem-%04d", i)
		us[i] = user{ID: ids[i], N: i, Ext: 60000 + i}
	}
	yaml := fixture(b, "config/web-memory-bench.yaml", us)
	path := filepath.Join(dir, "presenced.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := profileConfig(b, yaml) // the catalog, for the sessions below
	forgetUsers(b, ids...)
	p, err := env.StartPresenced(ctx, bin, path, "web-memory", "PRESENCED_HTTP_MAX_CONNECTIONS=1100")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Stop)
	base, pid := p.URL, p.PID()
	d := &daemonUnderTest{base: base}
	d.waitRole(b, "leader", 30*time.Second)
	for i, id := range ids {
		d.switchTo(b, id, []string{"available", "lunch"}[i%2], "info of "+id)
	}

	// Sessions made directly in the daemon's Redis: signing in 1,000 times would measure
	// the password hash instead.
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { rdb.Close() })
	acc, err := account.New(account.Options{Redis: rdb, Catalog: cfg.catalog})
	if err != nil {
		b.Fatal(err)
	}
	cookies := make([]string, streams)
	for i := range cookies {
		u, _ := cfg.catalog.User(presence.UserID(ids[i%users]))
		s, err := acc.Start(context.Background(), account.Identity{User: u})
		if err != nil {
			b.Fatal(err)
		}
		cookies[i] = s.ID
	}

	// At rest with one page open (the view of everyone built), then with all of them.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams + 10}}
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { stop(); wg.Wait() })
	got := make(chan time.Duration, streams)
	var switched time.Time
	var mu sync.Mutex
	open := func(i int) {
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+"/events", nil)
		req.AddCookie(&http.Cookie{Name: "presenced_session", Value: cookies[i]})
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("stream %d: %v %v", i, resp, err)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"user":"mem-0000"`) && strings.Contains(line, "the measured switch") {
					mu.Lock()
					got <- time.Since(switched)
					mu.Unlock()
				}
			}
		})
	}
	open(0)
	before := settle(b, d, pid)
	for i := 1; i < streams; i++ {
		open(i)
	}
	after := settle(b, d, pid)

	mu.Lock()
	switched = time.Now()
	mu.Unlock()
	d.switchTo(b, "mem-0000", "lunch", "the measured switch")
	var delays []time.Duration
	deadline := time.After(30 * time.Second)
	for len(delays) < streams {
		select {
		case dl := <-got:
			delays = append(delays, dl)
		case <-deadline:
			b.Fatalf("%d of %d streams saw the switch within 30 s", len(delays), streams)
		}
	}
	for b.Loop() { // the measurement above is the benchmark's one run; the loop's reset comes before the metrics
	}
	mib := func(v float64) float64 { return v / (1 << 20) }
	b.ReportMetric(mib(after.rss-before.rss), "rss-MiB")
	b.ReportMetric((after.rss-before.rss)/1024/float64(streams-1), "rss-KiB/stream")
	b.ReportMetric(mib(after.heap-before.heap), "heap-MiB")
	b.ReportMetric(mib(after.stack-before.stack), "stack-MiB")
	b.ReportMetric(after.goroutines-before.goroutines, "goroutines")
	b.ReportMetric(float64(percentile(delays, .99).Microseconds())/1000, "switch-p99-ms")
	b.Logf("presenced with %d users: resident %.1f MiB with one page open, %.1f MiB with %d (heap in use %.1f → %.1f MiB, stacks %.1f → %.1f MiB, goroutines %.0f → %.0f); the switch reached every stream: p50 %v, p99 %v",
		users, mib(before.rss), mib(after.rss), streams, mib(before.heap), mib(after.heap), mib(before.stack), mib(after.stack),
		before.goroutines, after.goroutines, percentile(delays, .5).Round(time.Millisecond), percentile(delays, .99).Round(time.Millisecond))
}

// memory is what a presenced process takes: its resident set and what /metrics says of Go.
type memory struct {
	rss, heap, stack, goroutines float64
}

// settle waits until the process's resident set stops growing (two reads a second apart
// within 1%) and returns its memory then.
func settle(b *testing.B, d *daemonUnderTest, pid int) memory {
	b.Helper()
	var last float64
	for range 30 {
		time.Sleep(time.Second)
		rss := vmRSS(b, pid)
		if last != 0 && rss <= last*1.01 {
			break
		}
		last = rss
	}
	_, body := d.get(b, "/metrics")
	m := memory{rss: vmRSS(b, pid)}
	for _, line := range strings.Split(body, "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heap = f
		case "go_memstats_stack_inuse_bytes":
			m.stack = f
		case "go_goroutines":
			m.goroutines = f
		}
	}
	return m
}

// vmRSS is the resident set of a process in bytes.
func vmRSS(b *testing.B, pid int) float64 {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
