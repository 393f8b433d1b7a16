package main

import (
	"bufio"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// registeredMetric is a metric family a registry describes: its labels, variable and constant.
type registeredMetric struct {
	labels map[string]bool
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descConst  = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVar    = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	constLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// registeredMetrics is every metric family reg describes, by name, including vectors that
// have no series yet (which /metrics does not show). client_golang's Desc exports no accessors:
// its String form names the family and its labels.
func registeredMetrics(t testing.TB, reg *prometheus.Registry) map[string]registeredMetric {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	out := map[string]registeredMetric{}
	for d := range ch {
		s := d.String()
		m := descName.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("cannot read a metric's name from %s", s)
		}
		rm, ok := out[m[1]]
		if !ok {
			rm = registeredMetric{labels: map[string]bool{}}
			out[m[1]] = rm
		}
		if c := descConst.FindStringSubmatch(s); c != nil {
			for _, l := range constLabel.FindAllStringSubmatch(c[1], -1) {
				rm.labels[l[1]] = true
			}
		}
		if v := descVar.FindStringSubmatch(s); v != nil {
			for l := range strings.SplitSeq(v[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					rm.labels[l] = true
				}
			}
		}
	}
	return out
}

// servedFamilies is the metric families of a /metrics body, by name, from its TYPE lines.
func servedFamilies(body string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// readmeMetric is one metric the README's metrics table names, with the labels it names.
type readmeMetric struct {
	name   string
	labels []string
}

var readmeMetricCell = regexp.MustCompile("`(presenced_[a-z0-9_]+)(?:\\{([a-z0-9_,]*)\\})?`")

// readmeMetrics reads the first column of the table under "### Metrics" in README.md.
func readmeMetrics(t testing.TB) []readmeMetric {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeMetric
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "### Metrics":
			in = true
			continue
		case in && strings.HasPrefix(line, "#"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range readmeMetricCell.FindAllStringSubmatch(first, -1) {
			rm := readmeMetric{name: m[1]}
			if m[2] != "" {
				rm.labels = strings.Split(m[2], ",")
			}
			out = append(out, rm)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("README.md's metrics table: found only %d metrics; has its heading (### Metrics) moved?", len(out))
	}
	return out
}

// sentinelOnlyMetrics are registered only with redis.sentinel; TestSentinelFailoverUnderAPISwitches
// checks that they are.
var sentinelOnlyMetrics = map[string]bool{"presenced_store_unconfirmed_writes_total": true}

// TestReadmeMetricsTableMatchesRegistered: the README's metrics table names every presenced_*
// metric a running presenced (on the lab Asterisk and Redis) registers, and nothing else; the
// labels it names are the metric's. What /metrics serves is all registered.
func TestReadmeMetricsTableMatchesRegistered(t *testing.T) {
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	cfg.Redis.URL = Secret(env.RedisURL)
	d := startDaemon(t, cfg)
	d.waitReady(t, 20*time.Second)
	reg := registeredMetrics(t, d.reg)

	documented := map[string]bool{}
	for _, m := range readmeMetrics(t) {
		documented[m.name] = true
		r, ok := reg[m.name]
		if !ok && sentinelOnlyMetrics[m.name] {
			continue
		}
		if !ok {
			t.Errorf("README.md's metrics table names %s, which presenced does not register", m.name)
			continue
		}
		for _, l := range m.labels {
			if !r.labels[l] {
				t.Errorf("README.md's metrics table gives %s a label %q; its labels are %v", m.name, l, sortedKeys(r.labels))
			}
		}
	}
	for name := range reg {
		if strings.HasPrefix(name, "presenced_") && !documented[name] {
			t.Errorf("presenced registers %s, which README.md's metrics table does not name", name)
		}
	}

	code, body := d.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	for name := range servedFamilies(body) {
		if _, ok := reg[name]; !ok {
			t.Errorf("/metrics serves %s, which the registry does not describe", name)
		}
	}
	if !strings.Contains(body, `presenced_build_info{goversion="go`) || !strings.Contains(body, `revision="`) {
		t.Errorf("/metrics: presenced_build_info lacks its goversion or revision label")
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
