package web

import (
	"html"
	"html/template"
	"strings"

	"github.com/presenced/presenced/presence"
)

// rowHTML renders one person of the colleagues list, for the page and for the live updates
// alike. It is written out by hand rather than by html/template because the page renders a
// row per user (1,000 rows took 30 ms through the template's escapers, docs/BENCHMARKS.md);
// every text is escaped with html.EscapeString, every attribute is quoted, and the colour is
// colourOf's (letters, digits and '#').
func (h *Handler) rowHTML(e presence.PresenceEntry, me bool) template.HTML {
	esc := html.EscapeString
	var b strings.Builder
	b.Grow(900)
	id := esc(string(e.User))
	b.WriteString(`<li class="person`)
	if me {
		b.WriteString(` me`)
	}
	b.WriteString(`" id="u-` + id + `" data-user="` + id + `" data-search="` +
		esc(strings.ToLower(e.Name)+" "+e.Extension+" "+strings.ToLower(e.Label)+" "+strings.ToLower(e.Info)) + `">`)
	b.WriteString(`<span class="avatar" aria-hidden="true">` + esc(initials(e.Name)) + `</span>`)
	b.WriteString(`<span class="pname"><strong>` + esc(e.Name) + `</strong>`)
	if me {
		b.WriteString(` <span class="tag">you</span>`)
	}
	b.WriteString(` <span class="ext">` + esc(e.Extension) + `</span></span>`)
	b.WriteString(`<span class="pstate"><svg class="dot" aria-hidden="true" width="14" height="14" viewBox="0 0 14 14"><circle cx="7" cy="7" r="6" fill="` +
		esc(colourOf(e.Colour)) + `"/></svg>`)
	if e.Label != "" {
		b.WriteString(string(iconSVG(e.Icon, e.Label)))
	}
	b.WriteString(`<span class="label">`)
	if e.Label != "" {
		b.WriteString(esc(e.Label))
	} else {
		b.WriteString("Not set")
	}
	b.WriteString(`</span>`)
	if e.Private {
		b.WriteString(` <span class="tag" title="Colleagues see only the presence state">private</span>`)
	}
	if e.OnCall {
		b.WriteString(` <span class="tag call">on a call</span>`)
	}
	b.WriteString(`</span><span class="pinfo">` + esc(e.Info) + `</span><span class="psince">`)
	if !e.Since.IsZero() {
		b.WriteString(`<time datetime="` + e.Since.UTC().Format("2006-01-02T15:04:05Z07:00") + `">since ` + esc(h.when(e.Since)) + `</time>`)
	}
	b.WriteString(`</span></li>`)
	return template.HTML(b.String())
}
