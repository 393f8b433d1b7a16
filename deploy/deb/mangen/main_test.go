package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCLI is a program whose --help is cobra's, for the root command and one subcommand.
const fakeCLI = `#!/bin/sh
if [ "$1" = "--help" ]; then cat <<'HELP'
fake does things: one thing, then another.

.dots and \backslashes are text, not roff.

Exit codes:
  0  done
  2  wrong command line

Usage:
  fake [command]

Available Commands:
  completion  Generate the autocompletion script for the specified shell
  greet       Say hello
  help        Help about any command

Flags:
  -h, --help   help for fake
      --json   print JSON

Use "fake [command] --help" for more information about a command.
HELP
elif [ "$1" = "greet" ] && [ "$2" = "--help" ]; then cat <<'HELP'
greet says hello to NAME.

Usage:
  fake greet NAME [flags]

Examples:
  fake greet alice

Flags:
  -h, --help   help for greet

Global Flags:
      --json   print JSON
HELP
elif [ "$1" = "completion" ] && [ "$2" = "--help" ]; then cat <<'HELP'
Generate the autocompletion script for fake.

Usage:
  fake completion [command]
HELP
else exit 3; fi
`

func TestGenerate(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fake")
	if err := os.WriteFile(bin, []byte(fakeCLI), 0o755); err != nil {
		t.Fatal(err)
	}
	page, err := generate(bin, "1", "presenced 1.0", []string{"presenced(8)"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`.TH FAKE 1 "" "presenced 1.0" "User Commands"`,
		"fake \\- does things\n",
		".SH SYNOPSIS\n.PP\n.nf\n.RS 4\nfake [command]\n",
		`\&.dots and \ebackslashes are text, not roff.`,
		".nf\nExit codes:\n  0  done\n",
		".SH OPTIONS",
		`\-\-json   print JSON`,
		".SS \"fake greet\"\n.PP\ngreet says hello to NAME.\n",
		"Examples:\n.PP\n.nf\n.RS 4\nfake greet alice\n",
		".SS \"fake completion\"",
		".SH SEE ALSO\n.BR presenced (8)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `"fake help"`) || strings.Contains(page, "Global Flags") {
		t.Errorf("the page documents help or repeats the global flags:\n%s", page)
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		path := filepath.Join(t.TempDir(), "fake.1")
		os.WriteFile(path, []byte(page), 0o644)
		if out, err := exec.Command(groff, "-man", "-ww", "-z", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff -ww: %v\n%s", err, out)
		}
	}
}

func TestGenerateNotCobra(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(bin, []byte("#!/bin/sh\necho 'plain: no usage here'\n"), 0o755)
	if _, err := generate(bin, "1", "", nil); err == nil || !strings.Contains(err.Error(), "no Usage") {
		t.Fatalf("a help that is not cobra's: %v", err)
	}
	os.WriteFile(bin, []byte("#!/bin/sh\nexit 4\n"), 0o755)
	if _, err := generate(bin, "1", "", nil); err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("a failing program: %v", err)
	}
}
