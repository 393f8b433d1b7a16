// Command testsummary reads `go test -json` on stdin and prints one line per test (so a CI log
// shows which integration tests ran), the whole output of every test that failed, then, just
// before the closing "N passed, N failed, N skipped" line, what each failed test itself said
// (its t.Error and t.Fatal lines, not the logs it relayed): a log cut to its last lines still
// says why. It exits non-zero when anything failed, when a package
// failed outside its tests (a lab that could not start), or when nothing ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

func main() {
	os.Exit(summarise(os.Stdin, os.Stdout))
}

func summarise(r io.Reader, w io.Writer) int {
	output := map[string]*strings.Builder{} // package/test → its output
	var passed, failed, skipped int
	var failedPkgs []string
	var said []string // what failed tests said (assertions), for the end
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not test2json (a build error printed by go): show it as it is.
			fmt.Fprintln(w, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				short := strings.TrimPrefix(e.Package, "github.com/presenced/presenced/")
				fmt.Fprintf(w, "%s %s (%.1fs)\n", strings.ToUpper(e.Action), short, e.Elapsed)
				if e.Action == "fail" {
					failedPkgs = append(failedPkgs, e.Package)
					// Tests that never ended (a hang cut short by -timeout or SIGQUIT, whose
					// goroutine dump is their output) are shown before the package's own output.
					for k, b := range output {
						if pkg, test, _ := strings.Cut(k, " "); pkg == e.Package && test != "" {
							fmt.Fprintf(w, "    --- DID NOT END: %s\n", test)
							fmt.Fprint(w, indent(lastLines(b.String(), 200)))
							delete(output, k)
						}
					}
					if b := output[key]; b != nil {
						fmt.Fprint(w, indent(b.String()))
					}
				}
				continue
			}
			fmt.Fprintf(w, "    --- %s: %s (%.2fs)\n", strings.ToUpper(e.Action), e.Test, e.Elapsed)
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
				if b := output[key]; b != nil {
					fmt.Fprint(w, indent(lastLines(b.String(), 3)))
				}
			case "fail":
				failed++
				if b := output[key]; b != nil {
					fmt.Fprint(w, indent(b.String()))
					said = append(said, assertions(e.Test, b.String())...)
				}
			}
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testsummary: read: %v\n", err)
		return 1
	}
	if len(said) > 0 {
		fmt.Fprintln(w, "what the failed tests said:")
		for _, l := range said {
			fmt.Fprintln(w, "    "+l)
		}
	}
	sort.Strings(failedPkgs)
	if len(failedPkgs) > 0 {
		fmt.Fprintf(w, "failed packages: %s\n", strings.Join(failedPkgs, " "))
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || len(failedPkgs) > 0 || passed == 0 {
		return 1
	}
	return 0
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("        " + l)
		}
	}
	if !strings.HasSuffix(b.String(), "\n") && b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// assertion is a line a test wrote through t.Error, t.Fatal or t.Log ("    file_test.go:12: …"),
// and logLine one of those that relays a log record (slog's text or the log package's format).
var (
	assertion = regexp.MustCompile(`^\s*\w+_test\.go:\d+: `)
	logLine   = regexp.MustCompile(`^\s*\w+_test\.go:\d+: (time=|level=|\d{4}/\d\d/\d\d )`)
)

// assertions returns what a failed test said, its name first on each line: its own lines,
// at most 10, without the logs it relayed and its panic's first line.
func assertions(test, out string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if (assertion.MatchString(l) && !logLine.MatchString(l)) || strings.HasPrefix(l, "panic: ") {
			got = append(got, test+": "+strings.TrimSpace(l))
		}
	}
	if len(got) > 10 {
		got = append(got[:10], fmt.Sprintf("%s: … %d more lines", test, len(got)-10))
	}
	return got
}
