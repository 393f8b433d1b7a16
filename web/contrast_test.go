package web

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestTextContrast: every colour the web app's stylesheet gives text has a WCAG 2 contrast
// ratio of at least 4.5:1 with every background it can stand on: a rule's own background
// when it sets one (with the text colour it sets or inherits), else every surface of the
// pages (the page, the cards and the other boxes that set a background but not a text
// colour). Rules with an opacity (disabled rows) are judged with their colours blended into
// what shows through. Disabled buttons are exempt, as WCAG exempts inactive controls.
func TestTextContrast(t *testing.T) {
	css, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	rules := parseCSS(string(css))
	vars := map[string]string{}
	for _, r := range rules {
		if r.selector == ":root" {
			for k, v := range r.decls {
				vars[k] = v
			}
		}
	}
	colour := func(v string) (rgb, bool) {
		v = strings.TrimSpace(v)
		if name, ok := strings.CutPrefix(v, "var("); ok {
			v = vars[strings.TrimSuffix(name, ")")]
		}
		return parseHex(v)
	}
	ink, ok := colour("var(--ink)")
	if !ok {
		t.Fatal("no --ink")
	}
	white := rgb{255, 255, 255}
	page, _ := colour("var(--bg)")

	// Surfaces: the page, and every box with a background of its own but no text colour of
	// its own, on which text of other rules stands.
	surfaces := map[string]rgb{"body": page}
	type pair struct {
		what   string
		fg, bg rgb
	}
	var pairs []pair
	var texts []struct {
		what string
		fg   rgb
	}
	for _, r := range rules {
		if r.selector == ":root" || strings.Contains(r.selector, ":disabled") {
			continue
		}
		bg, hasBG := colour(r.background())
		fg, hasFG := colour(r.decls["color"])
		switch {
		case hasBG && hasFG:
			pairs = append(pairs, pair{r.selector, fg, bg})
		case hasBG:
			surfaces[r.selector] = bg
			pairs = append(pairs, pair{r.selector + " (inherited text)", ink, bg})
		case hasFG:
			texts = append(texts, struct {
				what string
				fg   rgb
			}{r.selector, fg})
		}
	}
	for _, tx := range texts {
		for name, bg := range surfaces {
			pairs = append(pairs, pair{tx.what + " on " + name, tx.fg, bg})
		}
	}
	// Faded rules: what they hold, blended with the surface behind them (a card).
	for _, r := range rules {
		op := r.decls["opacity"]
		if op == "" || strings.Contains(r.selector, ":disabled") {
			continue
		}
		a, err := strconv.ParseFloat(op, 64)
		if err != nil {
			t.Fatalf("%s: opacity %q", r.selector, op)
		}
		behind := white
		bg, ok := colour(r.background())
		if !ok {
			bg = behind
		}
		for _, p := range append([]pair{{"text", ink, bg}}, func() []pair {
			var out []pair
			for _, tx := range texts {
				out = append(out, pair{tx.what, tx.fg, bg})
			}
			return out
		}()...) {
			pairs = append(pairs, pair{p.what + " in faded " + r.selector, blend(p.fg, behind, a), blend(p.bg, behind, a)})
		}
	}
	if len(pairs) < 50 {
		t.Fatalf("only %d colour pairs found: is the stylesheet parsed?", len(pairs))
	}
	for _, p := range pairs {
		if c := contrast(p.fg, p.bg); c < 4.5 {
			t.Errorf("%s: %s on %s has a contrast of %.2f:1, below 4.5:1", p.what, p.fg, p.bg, c)
		}
	}
}

// cssRule is one rule of a stylesheet: its selector and declarations.
type cssRule struct {
	selector string
	decls    map[string]string
}

// background is the colour the rule's background or background-color declares, if any.
func (r cssRule) background() string {
	if v, ok := r.decls["background-color"]; ok {
		return v
	}
	return r.decls["background"]
}

var cssRuleRE = regexp.MustCompile(`([^{}]+)\{([^{}]*)\}`)

// parseCSS reads the rules of a flat stylesheet (the rules inside @media blocks too), one
// per selector of a selector list.
func parseCSS(css string) []cssRule {
	css = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(css, "")
	var out []cssRule
	for _, m := range cssRuleRE.FindAllStringSubmatch(css, -1) {
		decls := map[string]string{}
		for d := range strings.SplitSeq(m[2], ";") {
			if k, v, ok := strings.Cut(d, ":"); ok {
				decls[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		for sel := range strings.SplitSeq(m[1], ",") {
			out = append(out, cssRule{strings.TrimSpace(sel), decls})
		}
	}
	return out
}

type rgb [3]float64

func (c rgb) String() string { return fmt.Sprintf("#%02x%02x%02x", int(c[0]), int(c[1]), int(c[2])) }

// parseHex reads #rgb or #rrggbb.
func parseHex(s string) (rgb, bool) {
	s, ok := strings.CutPrefix(s, "#")
	if !ok {
		return rgb{}, false
	}
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 6 {
		return rgb{}, false
	}
	return rgb{float64(n >> 16 & 0xff), float64(n >> 8 & 0xff), float64(n & 0xff)}, true
}

// blend is c at opacity a over behind.
func blend(c, behind rgb, a float64) rgb {
	var out rgb
	for i := range c {
		out[i] = math.Round(a*c[i] + (1-a)*behind[i])
	}
	return out
}

// luminance is WCAG 2's relative luminance.
func luminance(c rgb) float64 {
	var l [3]float64
	for i, v := range c {
		v /= 255
		if v <= 0.04045 {
			l[i] = v / 12.92
		} else {
			l[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

// contrast is WCAG 2's contrast ratio of two colours.
func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

func TestContrastFormula(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"#000", "#fff", 21},
		{"#fff", "#fff", 1},
		{"#767676", "#fff", 4.54}, // the lightest grey on white that passes
		{"#777", "#fff", 4.48},
	} {
		a, _ := parseHex(tc.a)
		b, _ := parseHex(tc.b)
		if got := contrast(a, b); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("contrast(%s, %s) = %.3f, want %.2f", tc.a, tc.b, got, tc.want)
		}
	}
}
