package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// registeredMetric is a metric family a registry describes: its labels, variable and constant.
type registeredMetric struct {
	labels map[string]bool
	// vector: it has variable labels, so /metrics shows it only once it has a series.
	vector bool
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
					rm.vector = true
				}
			}
		}
		out[m[1]] = rm
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

// awaitedMetrics are named by the shipped alert rules before presenced registers them: the
// configuration reload (issue 13) adds presenced_config_last_reload_successful. Remove an
// entry once it is registered.
var awaitedMetrics = map[string]bool{}

var exprMetric = regexp.MustCompile(`\bpresenced_[a-z0-9_]+`)

// shippedExpressions are the PromQL expressions of deploy/grafana/presenced.json (its panels'
// targets and its variables' queries) and deploy/prometheus/alerts.yml, by where they are.
func shippedExpressions(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile("../../deploy/grafana/presenced.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/presenced.json: %v", err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("dashboard panel %q target %d", p.Title, i)] = tg.Expr
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			out[fmt.Sprintf("dashboard variable %s", v.Name)] = v.Definition
		}
	}
	b, err = os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d expressions read from the dashboard and the alert rules", len(out))
	}
	return out
}

// registeredOnly are the labelled metrics the dashboard or the alert rules query that a
// presenced just started on the lab (TestDashboardAndAlertsUseServedMetrics) registers but has
// no series of yet, with why: each series appears with its first event. Any other metric
// they query must be on /metrics; a metric listed here that is served fails the test too (take
// it off the list).
var registeredOnly = map[string]string{}

// shippedAlert is one rule of deploy/prometheus/alerts.yml.
type shippedAlert struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// texts are the alert's templates: its labels' and annotations' values.
func (a shippedAlert) texts() []string {
	var out []string
	for _, v := range a.Labels {
		out = append(out, v)
	}
	for _, v := range a.Annotations {
		out = append(out, v)
	}
	return out
}

func shippedAlerts(t testing.TB) []shippedAlert {
	t.Helper()
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []shippedAlert `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	var out []shippedAlert
	for _, g := range rules.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestDashboardAndAlertsUseServedMetrics: every presenced_* metric the shipped Grafana dashboard
// and alert rules query is one a running presenced (on the lab Asterisk and Redis) serves on
// /metrics, with the labels the expressions group by and the labels the alerts' annotations
// and labels name ($labels.x); a vector with no series yet (a counter by kind nothing has
// counted) must be registered and in registeredOnly, which says why it has none.
func TestDashboardAndAlertsUseServedMetrics(t *testing.T) {
	d := startDaemon(t, profileConfig(t, fixture(t, "config/end-to-end.yaml", nil)))
	d.waitReady(t, 20*time.Second)
	// A switch through the API: the switch and API series appear with it.
	d.switchTo(t, "alice", "lunch", "")
	reg := registeredMetrics(t, d.reg)
	code, body := d.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	served := servedFamilies(body)

	onlyRegistered := map[string][]string{} // family → where it is queried
	byLabel := regexp.MustCompile(`(?:by|without) \(([a-z_, ]*)\)`)
	for where, expr := range shippedExpressions(t) {
		names := exprMetric.FindAllString(expr, -1)
		if len(names) == 0 && !strings.Contains(expr, "up{") {
			t.Errorf("%s: no presenced metric in %q", where, expr)
		}
		for _, name := range names {
			family := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && reg[base].labels != nil && reg[name].labels == nil {
					family = base
				}
			}
			r, registered := reg[family]
			_, isServed := served[family]
			switch {
			case awaitedMetrics[family] && !registered:
				t.Logf("%s: %s is not registered yet (awaited)", where, family)
				continue
			case !registered:
				t.Errorf("%s: %s is not a metric presenced registers (%s)", where, name, expr)
				continue
			case !isServed && !r.vector:
				t.Errorf("%s: %s is registered but not served on /metrics", where, name)
			case !isServed:
				onlyRegistered[family] = append(onlyRegistered[family], where)
			case registeredOnly[family] != "":
				t.Errorf("%s: %s is served on /metrics: take it off registeredOnly", where, family)
			}
			if typ := served[family]; name != family && isServed && typ != "histogram" && typ != "summary" {
				t.Errorf("%s: %s: %s is a %s, not a histogram", where, name, family, typ)
			}
			for _, m := range byLabel.FindAllStringSubmatch(expr, -1) {
				for l := range strings.SplitSeq(m[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" || l == "le" || l == "job" || l == "instance" {
						continue
					}
					if len(names) == 1 && !r.labels[l] {
						t.Errorf("%s: groups %s by %q, which it does not have (%v)", where, family, l, sortedKeys(r.labels))
					}
				}
			}
		}
	}
	for family, where := range onlyRegistered {
		sort.Strings(where)
		if why := registeredOnly[family]; why != "" {
			t.Logf("%s has no series yet (%s); queried by %s", family, why, strings.Join(where, ", "))
			continue
		}
		t.Errorf("%s is registered but has no series on /metrics, and registeredOnly does not say why; queried by %s",
			family, strings.Join(where, ", "))
	}

	// The alerts' annotations and labels name only labels their expression's series have.
	labelRef := regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	refs := 0
	for _, a := range shippedAlerts(t) {
		names := exprMetric.FindAllString(a.Expr, -1)
		for _, text := range a.texts() {
			for _, m := range labelRef.FindAllStringSubmatch(text, -1) {
				refs++
				l := m[1]
				if l == "job" || l == "instance" {
					continue
				}
				has := false
				for _, name := range names {
					family := name
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if base, ok := strings.CutSuffix(name, suffix); ok && reg[base].labels != nil && reg[name].labels == nil {
							family = base
						}
					}
					has = has || reg[family].labels[l]
				}
				if !has {
					t.Errorf("alert %s names $labels.%s, which none of %v has", a.Alert, l, names)
				}
			}
		}
	}
	if refs == 0 {
		t.Error("no alert names a $labels.x: the check looked at nothing")
	}
}
