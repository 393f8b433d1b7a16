// Package e2e holds end-to-end tests of the built binaries against the lab (Asterisk and
// Redis, internal/lab), run as `make up` runs presenced: every command of the README (fenced
// blocks of any language, inline curl, presenced and presencectl commands) run as written, or
// deliberately marked as not run, and the daemon's JSON log. It has no code of its own but the
// README's examples' extraction (Examples).
package e2e

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// Block is one fenced code block of a Markdown document (of any language), or one inline code
// span that starts like a command.
type Block struct {
	// Line is where it starts (1-based).
	Line int
	// Lang is a fenced block's language (the first word of its info string: "sh", "yaml",
	// "text"); "" for a block without one and for an inline span.
	Lang string
	// Script is its text; Commands its logical lines (continuations joined, comments and
	// blank lines left out).
	Script   string
	Commands []string
	Inline   bool
	// NotRun is the reason of a `<!-- not run: reason -->` marker right before the block: on
	// the line before its fence, or before the inline span in its paragraph. A block so marked
	// is deliberately not run.
	NotRun string
	// Template is true for an inline span with a <placeholder> or an ellipsis: a form to fill
	// in, not a command.
	Template bool
}

// Programs says which programs a Block's commands start with ("curl", "bin/presencectl"),
// after any VAR=value assignments.
func (b Block) Programs() []string {
	var out []string
	for _, c := range b.Commands {
		out = append(out, program(c))
	}
	return out
}

// shellLangs are the languages of fenced blocks that are commands.
var shellLangs = map[string]bool{"sh": true, "bash": true, "console": true, "shell": true, "zsh": true}

// commandWords are the programs whose appearance at the start of a line makes a block of any
// other language (text, a block without one) hold commands.
var commandWords = map[string]bool{"curl": true, "bin/presenced": true, "bin/presencectl": true,
	"presenced": true, "presencectl": true, "make": true, "systemctl": true, "kill": true,
	"docker": true, "go": true, "export": true, "echo": true, "openssl": true, "apt": true,
	"apt-get": true, "sudo": true, "install": true, "useradd": true, "bash": true}

// HoldsCommands reports whether a block is commands: an inline command, a shell block, or a
// block of another language with a line starting with a known program.
func (b Block) HoldsCommands() bool {
	if b.Inline || shellLangs[b.Lang] {
		return true
	}
	for _, p := range b.Programs() {
		if commandWords[p] {
			return true
		}
	}
	return false
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=\S*$`)

// program is the first word of a command that is not an assignment.
func program(cmd string) string {
	for _, w := range strings.Fields(cmd) {
		if !assignment.MatchString(w) {
			return w
		}
	}
	return ""
}

// inlineSpan finds the code spans of a paragraph, each with the not-run marker right before it.
var inlineSpan = regexp.MustCompile("(?:<!--\\s*not run:\\s*(.*?)\\s*-->\\s*)?`([^`]+)`")

// notRunMarker is a line marking the fenced block after it as not run.
var notRunMarker = regexp.MustCompile(`^<!--\s*not run:\s*(.*?)\s*-->$`)

// placeholder is a <placeholder> of a template (not a redirection: "< file").
var placeholder = regexp.MustCompile(`<[A-Za-z][^<>]*>`)

// Examples returns every fenced code block of a Markdown document, whatever its language, and
// its inline code spans that start with one of the inline prefixes (e.g. "curl ",
// "bin/presencectl "), templates (a <placeholder>, an ellipsis) flagged as such.
func Examples(markdown string, inline ...string) ([]Block, error) {
	var out []Block
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur *Block
	var para strings.Builder // inline spans may wrap lines: look at whole paragraphs
	paraLine, n := 0, 0
	prev := "" // the line before, trimmed
	flushPara := func() {
		text := strings.ReplaceAll(para.String(), "\n", " ")
		for _, m := range inlineSpan.FindAllStringSubmatch(text, -1) {
			span := m[2]
			for _, p := range inline {
				if strings.HasPrefix(span, p) {
					out = append(out, Block{Line: paraLine, Script: span, Commands: []string{span}, Inline: true,
						NotRun:   m[1],
						Template: placeholder.MatchString(span) || strings.Contains(span, "…") || strings.Contains(span, "...")})
					break
				}
			}
		}
		para.Reset()
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			flushPara()
			cur = &Block{Line: n}
			if f := strings.Fields(strings.TrimPrefix(trimmed, "```")); len(f) > 0 {
				cur.Lang = f[0]
			}
			if m := notRunMarker.FindStringSubmatch(prev); m != nil {
				cur.NotRun = m[1]
			}
		case cur != nil && trimmed == "```":
			cur.Commands = logicalLines(cur.Script)
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.Script += line + "\n"
		case trimmed == "":
			flushPara()
		default:
			if para.Len() == 0 {
				paraLine = n
			}
			para.WriteString(line + "\n")
		}
		prev = trimmed
	}
	flushPara()
	if cur != nil {
		return nil, fmt.Errorf("the code block of line %d is not closed", cur.Line)
	}
	return out, sc.Err()
}

// logicalLines joins continued lines and leaves out comments and blank lines.
func logicalLines(script string) []string {
	var out []string
	var cur string
	for _, l := range strings.Split(script, "\n") {
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		cur += l
		if t := strings.TrimSpace(cur); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
		cur = ""
	}
	return out
}
