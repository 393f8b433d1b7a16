// Package prometheus_test checks the shipped alert rules (alerts.yml) with Prometheus's own
// promtool (Debian's prometheus package, which make test installs when it is missing): the
// rules are valid, their unit tests (alerts_test.yml) pass, every alert has a unit test that
// makes it fire, and every alert has a summary, a description and a section in docs/runbook.md.
// That their expressions name only metrics presenced serves is checked against a running
// presenced in cmd/presenced (TestDashboardAndAlertsUseServedMetrics).
package prometheus_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (Debian's prometheus package; make test installs it)")
	}
	return p
}

// TestRulesCheck: promtool check rules accepts alerts.yml.
func TestRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules alerts.yml: %v\n%s", err, out)
	}
}

// TestRulesUnitTests: promtool test rules runs alerts_test.yml and every test passes.
func TestRulesUnitTests(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", "alerts_test.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules alerts_test.yml: %v\n%s", err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type testFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var runbookAnchor = regexp.MustCompile(`/docs/runbook\.md#([a-z0-9-]+)$`)

// TestEveryAlertIsTestedAndDocumented: every alert fires in a unit test, has a severity, a
// summary, a description and a runbook_url whose anchor is a section of docs/runbook.md.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	var rules ruleFile
	readYAML(t, "alerts.yml", &rules)
	var tests testFile
	readYAML(t, "alerts_test.yml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	runbook, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for line := range strings.SplitSeq(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			sections[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("%s: no unit test in alerts_test.yml makes it fire", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s", r.Alert, a)
				}
			}
			m := runbookAnchor.FindStringSubmatch(r.Annotations["runbook_url"])
			switch {
			case m == nil:
				t.Errorf("%s: runbook_url %q does not point into docs/runbook.md", r.Alert, r.Annotations["runbook_url"])
			case m[1] != strings.ToLower(r.Alert):
				t.Errorf("%s: runbook_url anchor #%s, want #%s", r.Alert, m[1], strings.ToLower(r.Alert))
			case !sections[m[1]]:
				t.Errorf("%s: docs/runbook.md has no section \"## %s\"", r.Alert, r.Alert)
			}
		}
	}
	if n < 10 {
		t.Fatalf("alerts.yml: only %d alerts read", n)
	}
}
