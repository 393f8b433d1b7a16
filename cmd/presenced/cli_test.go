package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHelp: -help and --help print the usage to standard output and exit 0; a wrong flag is
// one line on standard error and exit 2.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-help"}, 0, "Usage: presenced [flags]", ""},
		{[]string{"--help"}, 0, "-check-config", ""},
		{[]string{"-h"}, 0, "-print-hints", ""},
		{[]string{"-frobnicate"}, 2, "", "presenced: command line: flag provided but not defined: -frobnicate (presenced -help lists the flags)\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(tc.args, nil, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) {
				t.Fatalf("exit %d (want %d), stdout %q", code, tc.code, stdout.String())
			}
			if tc.stderr == "" && stderr.Len() > 0 || tc.stderr != "" && stderr.String() != tc.stderr {
				t.Fatalf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
}

// TestPrintHintsNeedsNoSecrets: -print-hints reads the users and profiles; the connections'
// secrets it never uses need not be there (the README runs it on the lab's configuration).
func TestPrintHintsNeedsNoSecrets(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-print-hints", "-config", "../../deploy/presenced.lab.yaml"}, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "[presenced-hints-1001]") {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	// -check-config connects to nothing either: it warns about what the daemon would refuse.
	stdout.Reset()
	stderr.Reset()
	if code := realMain([]string{"-check-config", "-config", "../../deploy/presenced.lab.yaml"}, nil, &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "warning: asterisk.ami.secret: required") {
		t.Fatalf("-check-config without secrets: exit %d: %s", code, stderr.String())
	}
}

// TestJSONLogDurations: the JSON log writes durations as Go writes them ("28ms"), not as
// integer nanoseconds, in groups too.
func TestJSONLogDurations(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(LogConfig{Level: "info", Format: "json"}, &b)
	log.Info("x", "took", 28*time.Millisecond, slog.Group("g", "budget", 90*time.Second), "n", 3)
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["took"] != "28ms" || line["g"].(map[string]any)["budget"] != "1m30s" || line["n"] != 3.0 {
		t.Fatalf("logged %s", b.String())
	}
}
