// Package icon is the fixed set of profile icons the web app draws (package web): their names,
// which the REST API and the profile editor accept for a personal profile, and their outlines.
// System-wide profiles from the configuration may name any icon (presence/validate.go checks
// only its form); presenced's configuration check warns about a name not here (Unknown), and
// the web app draws a fallback for it.
package icon

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/presenced/presenced/presence"
)

// outlines are the icons' SVG contents: 24×24 outlines in the text colour. Constant markup, so
// safe to put into a page as it is.
var outlines = map[string]string{
	"available": `<circle cx="12" cy="12" r="9"/><path d="m8 12 3 3 5-6"/>`,
	"away":      `<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>`,
	"dnd":       `<circle cx="12" cy="12" r="9"/><path d="M7 12h10"/>`,
	"coffee":    `<path d="M4 9h12v5a5 5 0 0 1-5 5H9a5 5 0 0 1-5-5z"/><path d="M16 10h2a2 2 0 0 1 0 4h-2"/><path d="M8 3v3M12 3v3"/>`,
	"lunch":     `<path d="M7 3v8M5 3v4a2 2 0 0 0 4 0V3M7 11v10"/><path d="M17 3c-2 0-3 2-3 5s1 4 3 4v9"/>`,
	"meeting":   `<circle cx="8" cy="8" r="3"/><circle cx="16" cy="8" r="3"/><path d="M2 20c0-3 3-5 6-5s6 2 6 5M12 20c0-3 2-5 4-5 3 0 6 2 6 5"/>`,
	"phone":     `<path d="M5 3h4l2 5-3 2a11 11 0 0 0 6 6l2-3 5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 5a2 2 0 0 1 2-2"/>`,
	"headset":   `<path d="M4 14v-2a8 8 0 0 1 16 0v2"/><rect x="3" y="14" width="4" height="6" rx="1"/><rect x="17" y="14" width="4" height="6" rx="1"/>`,
	"home":      `<path d="M3 11 12 4l9 7"/><path d="M5 10v10h14V10"/><path d="M10 20v-6h4v6"/>`,
	"car":       `<path d="M3 16v-4l2-5h14l2 5v4z"/><circle cx="7" cy="17" r="2"/><circle cx="17" cy="17" r="2"/>`,
	"plane":     `<path d="M10 14 3 12l1-2 7 1 5-6a2 2 0 0 1 3 3l-6 5 1 7-2 1-2-7"/>`,
	"moon":      `<path d="M20 14A8 8 0 1 1 10 4a6 6 0 0 0 10 10"/>`,
	"focus":     `<circle cx="12" cy="12" r="8"/><circle cx="12" cy="12" r="4"/><circle cx="12" cy="12" r="1"/>`,
	"calendar":  `<rect x="3" y="5" width="18" height="16" rx="2"/><path d="M3 10h18M8 3v4M16 3v4"/>`,
	"lock":      `<rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/>`,
}

// names are the icons' names, sorted.
var names = slices.Sorted(maps.Keys(outlines))

// Names returns the icons' names, sorted.
func Names() []string { return slices.Clone(names) }

// Known reports whether the web app draws an icon of that name.
func Known(name string) bool {
	_, ok := outlines[name]
	return ok
}

// Outline returns the SVG contents of the named icon, false for a name not in the set.
func Outline(name string) (string, bool) {
	s, ok := outlines[name]
	return s, ok
}

// Check adds to err, what checking personal profile p found so far (nil, or a
// *presence.ValidationError), a problem when p's icon is not one of the set: a personal
// profile may use only the icons the web app draws. An empty icon is allowed (the web app
// draws its fallback). Any other error is returned as it is.
func Check(p *presence.Profile, err error) error {
	if p.Icon == "" || Known(p.Icon) {
		return err
	}
	problem := fmt.Sprintf("profile.icon: %q is not one of the icons: %s", p.Icon, strings.Join(names, ", "))
	var ve *presence.ValidationError
	switch {
	case err == nil:
		return &presence.ValidationError{Problems: []string{problem}}
	case errors.As(err, &ve):
		// One problem per field: this one, which names the icons there are.
		ps := slices.DeleteFunc(slices.Clone(ve.Problems), func(p string) bool { return strings.HasPrefix(p, "profile.icon: ") })
		return &presence.ValidationError{Problems: append(ps, problem)}
	}
	return err
}

// Unknown lists, for presenced's configuration check, the system-wide profiles whose icon the
// web app does not draw (it draws a fallback for them), as "profiles[i].icon: ..." warnings.
func Unknown(profiles []presence.Profile) []string {
	var out []string
	for i, p := range profiles {
		if p.Icon != "" && !Known(p.Icon) {
			out = append(out, fmt.Sprintf("profiles[%d].icon: the web app has no icon %q and draws the profile's initial instead (icons: %s)",
				i, p.Icon, strings.Join(names, ", ")))
		}
	}
	return out
}
