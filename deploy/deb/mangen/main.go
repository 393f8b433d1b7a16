// Command mangen writes a man page for a command line program whose --help is cobra's (as
// presencectl's is), from what the program itself prints: the root command's help and each
// subcommand's. deploy/deb/build.sh makes presencectl(1) with it, so the page says what the
// binary in the package does.
//
//	go run ./deploy/deb/mangen -bin bin/presencectl -section 1 -source "presenced 1.2.0" > presencectl.1
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	bin := flag.String("bin", "", "the program to document (run with --help)")
	section := flag.String("section", "1", "the manual section")
	source := flag.String("source", "", "the page's source (e.g. the package and version)")
	seeAlso := flag.String("see-also", "", "comma-separated pages for SEE ALSO, e.g. presenced(8)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "mangen: -bin is required")
		os.Exit(2)
	}
	page, err := generate(*bin, *section, *source, splitList(*seeAlso))
	if err != nil {
		fmt.Fprintf(os.Stderr, "mangen: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(page)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// help is a cobra help text split into its parts.
type help struct {
	description []string            // the text before "Usage:"
	sections    map[string][]string // "Usage", "Examples", "Available Commands", "Flags", ...
	order       []string
}

func parseHelp(text string) help {
	h := help{sections: map[string][]string{}}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t")
		if name, ok := strings.CutSuffix(line, ":"); ok && line != "" && line[0] != ' ' && !strings.Contains(name, " ") ||
			line == "Available Commands:" || line == "Global Flags:" || line == "Additional help topics:" {
			cur = strings.TrimSuffix(line, ":")
			h.order = append(h.order, cur)
			continue
		}
		if strings.HasPrefix(line, "Use \"") && strings.HasSuffix(line, "for more information about a command.") {
			continue
		}
		if cur == "" {
			h.description = append(h.description, line)
		} else {
			h.sections[cur] = append(h.sections[cur], line)
		}
	}
	h.description = trimBlank(h.description)
	for k, v := range h.sections {
		h.sections[k] = trimBlank(v)
	}
	return h
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func runHelp(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, append(args, "--help")...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s %s --help: %v: %s", bin, strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("%s %s --help: %w", bin, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// escape makes a line of text safe in roff: backslashes, and a leading . or ' (a request).
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// paragraphs writes text: blank lines separate paragraphs; a paragraph with indented lines
// (a list, a table) is kept as it is.
func paragraphs(w io.Writer, lines []string) {
	var para []string
	flush := func() {
		if len(para) == 0 {
			return
		}
		literal := false
		for _, l := range para {
			if strings.HasPrefix(l, " ") {
				literal = true
			}
		}
		fmt.Fprintln(w, ".PP")
		if literal {
			fmt.Fprintln(w, ".nf")
		}
		for _, l := range para {
			fmt.Fprintln(w, escape(l))
		}
		if literal {
			fmt.Fprintln(w, ".fi")
		}
		para = nil
	}
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		para = append(para, l)
	}
	flush()
}

// literal writes lines as they are, unfilled.
func literal(w io.Writer, lines []string) {
	fmt.Fprintln(w, ".PP")
	fmt.Fprintln(w, ".nf")
	fmt.Fprintln(w, ".RS 4")
	for _, l := range lines {
		fmt.Fprintln(w, escape(strings.TrimPrefix(l, "  ")))
	}
	fmt.Fprintln(w, ".RE")
	fmt.Fprintln(w, ".fi")
}

func generate(bin, section, source string, seeAlso []string) (string, error) {
	name := filepath.Base(bin)
	text, err := runHelp(bin)
	if err != nil {
		return "", err
	}
	root := parseHelp(text)
	if len(root.sections["Usage"]) == 0 {
		return "", fmt.Errorf("%s --help: no Usage: section (not cobra's help?)", name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s \"\" %q \"User Commands\"\n", strings.ToUpper(name), section, source)
	fmt.Fprintln(&b, ".SH NAME")
	summary := ""
	if len(root.description) > 0 {
		summary = root.description[0]
		if i := strings.IndexAny(summary, ":."); i > 0 {
			summary = summary[:i]
		}
		summary = strings.TrimPrefix(summary, name+" ")
	}
	fmt.Fprintf(&b, "%s \\- %s\n", escape(name), escape(summary))
	fmt.Fprintln(&b, ".SH SYNOPSIS")
	literal(&b, root.sections["Usage"])
	fmt.Fprintln(&b, ".SH DESCRIPTION")
	paragraphs(&b, root.description)
	if f := root.sections["Flags"]; len(f) > 0 {
		fmt.Fprintln(&b, ".SH OPTIONS")
		literal(&b, f)
	}
	var commands []string
	for _, l := range root.sections["Available Commands"] {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "help" {
			commands = append(commands, f[0])
		}
	}
	if len(commands) > 0 {
		fmt.Fprintln(&b, ".SH COMMANDS")
		for _, c := range commands {
			text, err := runHelp(bin, c)
			if err != nil {
				return "", err
			}
			h := parseHelp(text)
			fmt.Fprintf(&b, ".SS \"%s %s\"\n", escape(name), escape(c))
			paragraphs(&b, h.description)
			for _, s := range h.order {
				if s == "Global Flags" || s == "Available Commands" {
					continue
				}
				fmt.Fprintf(&b, ".PP\n%s:\n", escape(s))
				literal(&b, h.sections[s])
			}
		}
	}
	if len(seeAlso) > 0 {
		fmt.Fprintln(&b, ".SH SEE ALSO")
		for i, s := range seeAlso {
			sep := ","
			if i == len(seeAlso)-1 {
				sep = ""
			}
			if p, sec, ok := strings.Cut(s, "("); ok {
				fmt.Fprintf(&b, ".BR %s (%s%s\n", escape(p), sec, sep)
			} else {
				fmt.Fprintf(&b, "%s%s\n", escape(s), sep)
			}
		}
	}
	return b.String(), nil
}
