// Package e2e holds end-to-end tests of the built binaries against the lab (Asterisk and
// Redis, internal/lab), run as `make up` runs presenced: every curl and presencectl example of
// the README, run as written, and the daemon's JSON log. It has no code of its own but the
// README's examples' extraction (Examples).
package e2e

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// Block is one fenced sh block of a Markdown document, or one inline code span that is a
// command.
type Block struct {
	// Line is where it starts (1-based).
	Line int
	// Script is its text; Commands its logical lines (continuations joined, comments and
	// blank lines left out).
	Script   string
	Commands []string
	Inline   bool
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

// inlineCommand finds the code spans of a line.
var inlineSpan = regexp.MustCompile("`([^`]+)`")

// Examples returns the fenced sh blocks of a Markdown document and its inline code spans that
// start with one of the inline prefixes (e.g. "curl -", "bin/presencectl ") and are complete
// commands (no <placeholder> or ellipsis).
func Examples(markdown string, inline ...string) ([]Block, error) {
	var out []Block
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur *Block
	var para strings.Builder // inline spans may wrap lines: look at whole paragraphs
	paraLine, n := 0, 0
	flushPara := func() {
		text := strings.ReplaceAll(para.String(), "\n", " ")
		for _, m := range inlineSpan.FindAllStringSubmatch(text, -1) {
			span := m[1]
			for _, p := range inline {
				if strings.HasPrefix(span, p) && !strings.ContainsAny(span, "<…") && !strings.Contains(span, "...") {
					out = append(out, Block{Line: paraLine, Script: span, Commands: []string{span}, Inline: true})
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
			lang := strings.TrimPrefix(trimmed, "```")
			cur = &Block{Line: n}
			if lang != "sh" && lang != "bash" && lang != "console" {
				cur.Line = -1 // not a shell block: skipped
			}
		case cur != nil && trimmed == "```":
			if cur.Line > 0 {
				cur.Commands = logicalLines(cur.Script)
				out = append(out, *cur)
			}
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
