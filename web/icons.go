package web

import (
	"html"
	"html/template"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/presenced/presenced/web/icon"
)

// iconNames are the icons' names, sorted: what the profile editor offers (package web/icon).
var iconNames = icon.Names()

// iconSVG draws the named icon (package web/icon). Every profile shows something: for a name
// the set does not have (a system-wide profile may name any) or none, it draws the first letter
// of label (the profile's name) in a circle, or a plain dot when label has no letter or digit.
func iconSVG(name, label string) template.HTML {
	const open = `<svg class="icon" aria-hidden="true" width="18" height="18" viewBox="0 0 24 24" fill="none" ` +
		`stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"`
	if inner, ok := icon.Outline(name); ok {
		return template.HTML(open + `>` + inner + `</svg>`)
	}
	letter := initialOf(label)
	if letter == "" {
		return template.HTML(open + ` data-icon="fallback"><circle cx="12" cy="12" r="4" fill="currentColor"/></svg>`)
	}
	return template.HTML(open + ` data-icon="fallback"><circle cx="12" cy="12" r="10"/>` +
		`<text x="12" y="16.5" text-anchor="middle" font-size="13" font-weight="700" fill="currentColor" stroke="none">` +
		html.EscapeString(letter) + `</text></svg>`)
}

// initialOf is the first letter or digit of s, upper case; "" when it has none.
func initialOf(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return strings.ToUpper(string(r))
		}
		s = s[n:]
	}
	return ""
}
