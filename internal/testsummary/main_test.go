package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummarise(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		wantCode int
		want     []string
	}{
		{
			name: "a test that never ended",
			in: `{"Action":"output","Package":"w","Test":"TestHang","Output":"goroutine 7 [chan receive]:\n"}
{"Action":"pass","Package":"w","Test":"TestA"}
{"Action":"fail","Package":"w"}`,
			wantCode: 1,
			want:     []string{"--- DID NOT END: TestHang", "goroutine 7 [chan receive]:", "failed packages: w"},
		},
		{
			name: "all pass",
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"noise\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.5}
{"Action":"pass","Package":"p","Elapsed":1}`,
			want: []string{"--- PASS: TestA", "PASS p", "1 passed, 0 failed, 0 skipped"},
		},
		{
			name: "failure shows its output",
			in: `{"Action":"output","Package":"p","Test":"TestB","Output":"b_test.go:9: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"fail","Package":"p"}`,
			wantCode: 1,
			want:     []string{"--- FAIL: TestB", "b_test.go:9: boom", "failed packages: p", "1 passed, 1 failed, 0 skipped"},
		},
		{
			name: "the failed tests' own lines at the end, without the logs they relayed",
			in: `{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    daemon_test.go:133: time=2026-12-06T16:13:53Z level=INFO msg=started\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: the sentinels had not failed over\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:12: 31 switches answered 200\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"redis: 2026/12/06 16:13:53 sentinel.go:1081: selected\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Output":"    fixture_test.go:3: 2026/12/06 16:13:53 a log line\n"}
{"Action":"fail","Package":"p"}`,
			wantCode: 1,
			want: []string{"what the failed tests said:\n    TestB: b_test.go:9: the sentinels had not failed over\n" +
				"    TestB: b_test.go:12: 31 switches answered 200\nfailed packages: p"},
		},
		{
			name: "package failing outside tests (lab did not start)",
			in: `{"Action":"output","Package":"q","Output":"lab: cannot start the test lab\n"}
{"Action":"fail","Package":"q"}
{"Action":"pass","Package":"p","Test":"TestA"}`,
			wantCode: 1,
			want:     []string{"FAIL q", "lab: cannot start the test lab", "failed packages: q"},
		},
		{
			name:     "nothing ran",
			in:       `{"Action":"skip","Package":"p"}`,
			wantCode: 1,
			want:     []string{"0 passed, 0 failed, 0 skipped"},
		},
		{
			name:     "build error line passed through",
			in:       "# github.com/x\nx.go:1: syntax error\n",
			wantCode: 1,
			want:     []string{"x.go:1: syntax error"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := summarise(strings.NewReader(tc.in), &out)
			if code != tc.wantCode {
				t.Errorf("code = %d, want %d\n%s", code, tc.wantCode, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if _, end, _ := strings.Cut(out.String(), "what the failed tests said:"); strings.Contains(end, "time=") || strings.Contains(end, "a log line") {
				t.Errorf("a relayed log among what the failed tests said:\n%s", out.String())
			}
			if strings.Contains(out.String(), "noise") {
				t.Errorf("output of a passing test shown:\n%s", out.String())
			}
		})
	}
}
