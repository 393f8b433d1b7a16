package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// roleSample is one /readyz answer of an instance under test: whether it said it leads, and
// the term's epoch. The instance was in that role at some moment between sent and recv.
type roleSample struct {
	who        string // the instance's name in the test
	round      int    // the sampler's round: every instance is asked once per round, in turn
	leader     bool
	epoch      int64 // while leading
	sent, recv time.Time
}

// roleWatch asks every instance's /readyz in turn, again and again, until the test ends, and
// records what they answer. It judges the answers without assuming they were taken at one
// moment (see twoLeaders).
type roleWatch struct {
	names []string
	ds    []*daemonUnderTest

	mu      sync.Mutex
	samples []roleSample
	errs    int // requests that failed or did not answer a role

	stop chan struct{}
	done chan struct{}
}

// watchRoles starts asking ds (named by names) until the test ends; the test fails then if
// the answers prove that two instances led at one moment.
func watchRoles(t *testing.T, names []string, ds ...*daemonUnderTest) *roleWatch {
	t.Helper()
	w := &roleWatch{names: names, ds: ds, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	t.Cleanup(func() {
		w.close()
		for _, o := range w.twoLeaders() {
			t.Errorf("two leaders at once: %s", o)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Logf("role watch: %d answers, %d requests without one", len(w.samples), w.errs)
	})
	return w
}

// close stops asking; what was recorded stays.
func (w *roleWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *roleWatch) loop() {
	defer close(w.done)
	client := &http.Client{Timeout: 5 * time.Second}
	for round := 0; ; round++ {
		for i, d := range w.ds {
			select {
			case <-w.stop:
				return
			default:
			}
			s, ok := askRole(client, d.base)
			w.mu.Lock()
			if ok {
				s.who, s.round = w.names[i], round
				w.samples = append(w.samples, s)
			} else {
				w.errs++
			}
			w.mu.Unlock()
		}
		select {
		case <-w.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// askRole asks the instance at base for its role.
func askRole(client *http.Client, base string) (roleSample, bool) {
	s := roleSample{sent: time.Now()}
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	var rd readiness
	err = json.NewDecoder(resp.Body).Decode(&rd)
	s.recv = time.Now()
	if err != nil || (rd.Role != "leader" && rd.Role != "standby") {
		return s, false
	}
	if rd.Role == "leader" {
		s.leader = true
		if _, e, ok := strings.Cut(rd.Leader, "(epoch "); ok {
			fmt.Sscan(strings.TrimSuffix(e, ")"), &s.epoch)
		}
	}
	return s, true
}

// all returns the samples so far.
func (w *roleWatch) all() []roleSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]roleSample(nil), w.samples...)
}

// term is what the samples show of one term: the instance that led in it, and the stretch of
// time during which it certainly led. A term is one interval of time, so it covered every
// moment from the answer of its first sample (it led at some moment before recv) to the
// request of its last (it led at some moment after sent); empty (from after to) when the term
// was seen once, or its samples overlap.
type term struct {
	who      string
	epoch    int64
	from, to time.Time
	samples  []roleSample
}

func (w *roleWatch) terms() map[int64]*term {
	terms := map[int64]*term{}
	for _, s := range w.all() {
		if !s.leader {
			continue
		}
		tm := terms[s.epoch]
		if tm == nil {
			tm = &term{who: s.who, epoch: s.epoch, from: s.recv}
			terms[s.epoch] = tm
		}
		if s.who != tm.who {
			// Two instances leading in one term: the same as two terms at once.
			tm.who += "+" + s.who
		}
		tm.to = s.sent
		tm.samples = append(tm.samples, s)
	}
	return terms
}

// twoLeaders lists what the answers prove of two instances leading at one moment: two
// instances naming one term, two terms certainly running at one moment, or an answer
// "leader" in one term within the stretch another certainly ran. An instance asked while a
// term ended and the next began may answer "leader" for both without that proving anything:
// only what certainly happened counts.
func (w *roleWatch) twoLeaders() []string {
	terms := w.terms()
	var out []string
	for _, a := range terms {
		if strings.Contains(a.who, "+") {
			out = append(out, fmt.Sprintf("instances %s all said they led in epoch %d", a.who, a.epoch))
		}
		for _, b := range terms {
			if a.epoch >= b.epoch {
				continue
			}
			if a.from.Before(a.to) && b.from.Before(b.to) && a.from.Before(b.to) && b.from.Before(a.to) {
				out = append(out, fmt.Sprintf("%s (epoch %d) led from %s to %s and %s (epoch %d) from %s to %s",
					a.who, a.epoch, clock(a.from), clock(a.to), b.who, b.epoch, clock(b.from), clock(b.to)))
				continue
			}
			for _, pair := range [][2]*term{{a, b}, {b, a}} {
				x, y := pair[0], pair[1]
				for _, s := range y.samples {
					if x.from.Before(s.sent) && s.recv.Before(x.to) {
						out = append(out, fmt.Sprintf("%s said it led (epoch %d) between %s and %s, while %s (epoch %d) led from %s to %s",
							s.who, y.epoch, clock(s.sent), clock(s.recv), x.who, x.epoch, clock(x.from), clock(x.to)))
						break
					}
				}
			}
		}
	}
	return out
}

// roundsWithout returns the rounds begun in [from, to) in which not exactly one instance
// said it led, as "round n: a, b" (the leaders named).
func (w *roleWatch) roundsWithout(from, to time.Time) []string {
	leaders := map[int][]string{}
	var order []int
	complete := map[int]int{}
	for _, s := range w.all() {
		if s.sent.Before(from) || !s.sent.Before(to) {
			continue
		}
		if _, seen := complete[s.round]; !seen {
			order = append(order, s.round)
		}
		complete[s.round]++
		if s.leader {
			leaders[s.round] = append(leaders[s.round], fmt.Sprintf("%s (epoch %d)", s.who, s.epoch))
		}
	}
	var out []string
	for _, r := range order {
		if complete[r] == len(w.ds) && len(leaders[r]) != 1 {
			out = append(out, fmt.Sprintf("round %d: leaders %v", r, leaders[r]))
		}
	}
	return out
}

// latest returns the term of the last answer "leader" so far.
func (w *roleWatch) latest() (*term, bool) {
	var last *roleSample
	samples := w.all()
	for i := range samples {
		if s := &samples[i]; s.leader && (last == nil || s.recv.After(last.recv)) {
			last = s
		}
	}
	if last == nil {
		return nil, false
	}
	return w.terms()[last.epoch], true
}

// waitAnswers waits until every instance answered at least n times after since.
func (w *roleWatch) waitAnswers(t *testing.T, since time.Time, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		count := map[string]int{}
		for _, s := range w.all() {
			if s.sent.After(since) {
				count[s.who]++
			}
		}
		ok := true
		for _, name := range w.names {
			ok = ok && count[name] >= n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instances did not answer /readyz %d times each within %v: %v", n, within, count)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

// metricOr0 is like metric, but a sample /metrics does not show (a labelled counter never
// counted) is 0.
func (d *daemonUnderTest) metricOr0(t *testing.T, name string) float64 {
	t.Helper()
	_, body := d.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// journalEntries reads up to limit entries of a user's journal through d's API, newest first.
func (d *daemonUnderTest) journalEntries(t *testing.T, user string, limit int) []map[string]any {
	t.Helper()
	code, body := d.call(t, http.MethodGet, fmt.Sprintf("/api/v1/users/%s/journal?limit=%d", user, limit), testToken("admin"), nil)
	if code != http.StatusOK {
		t.Fatalf("journal of %s: %d %v", user, code, body)
	}
	raw, _ := body["entries"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
