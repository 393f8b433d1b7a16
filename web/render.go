package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// page is what every template gets: the viewer, the page's data and a message.
type page struct {
	Title   string
	Nav     string // the menu entry to mark as current
	Viewer  *viewer
	CSRF    string
	Message string // a notice at the top (e.g. "Switched to Lunch")
	Error   string // an error at the top
	Data    any
}

// pageNames are the templates in templates/ besides layout.html.
var pageNames = []string{"signin", "setpassword", "status", "colleagues", "journal", "password", "admin", "error",
	"profiles", "profile", "schedule"}

func (h *Handler) parse() error {
	funcs := template.FuncMap{
		"clock":         func(t time.Time) string { return t.Format("15:04") },
		"when":          h.when,
		"ago":           h.ago,
		"source":        sourceWords,
		"trigger":       triggerWords,
		"actor":         actorWords,
		"opWords":       opWords,
		"result":        resultWords,
		"colour":        colourOf,
		"icon":          iconSVG,
		"iconNames":     func() []string { return iconNames },
		"initials":      initials,
		"lower":         strings.ToLower,
		"iso":           func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"list":          func(v ...string) []string { return v },
		"families":      presence.Families,
		"presenceLabel": presence.PresenceLabel,
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html",
			"templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("web: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// render writes a page, rendered to a buffer first so that a template error is a clean 500.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name string, v *viewer, p page) {
	p.Viewer = v
	if v != nil {
		p.CSRF = v.session.CSRF
	}
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// renderPart writes one named part of a page (the status card that the live updates fetch).
func (h *Handler) renderPart(w http.ResponseWriter, name, part string, v *viewer, p page) {
	p.Viewer = v
	if v != nil {
		p.CSRF = v.session.CSRF
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, part, p); err != nil {
		h.log.Error("template failed", "page", name, "part", part, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// when is a time as people read it: "14:05" today, "Tue 14:05" within a week, else the date.
func (h *Handler) when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	now := h.now().In(h.opts.Location)
	t = t.In(h.opts.Location)
	switch y1, d1 := now.Year(), now.YearDay(); {
	case t.Year() == y1 && t.YearDay() == d1:
		return t.Format("15:04")
	case t.Year() == y1 && t.YearDay() == d1+1:
		return "tomorrow " + t.Format("15:04")
	case t.Sub(now).Abs() < 6*24*time.Hour:
		return t.Format("Mon 15:04")
	}
	return t.Format("2 Jan 2006 15:04")
}

// ago is how long ago t was, roughly: "just now", "12 min", "3 h", "2 days".
func (h *Handler) ago(t time.Time) string {
	d := h.now().Sub(t)
	switch {
	case t.IsZero():
		return ""
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// sourceWords says what made a switch, for "why".
func sourceWords(s presence.Source) string {
	switch s {
	case presence.SourceAPI:
		return "set by hand"
	case presence.SourceFeatureCode:
		return "set by feature code on a phone"
	case presence.SourceSchedule:
		return "set by a schedule"
	case presence.SourceExternal:
		return "set by an external trigger"
	case presence.SourceExpiry:
		return "a timed profile ended"
	case presence.SourceUnanswered:
		return "queue calls went unanswered"
	case presence.SourcePhone:
		return "set on a phone"
	case presence.SourceSystem:
		return "set by presenced"
	}
	return string(s)
}

// triggerWords names a trigger (trigger.Why): "schedule <entry>", "external trigger <name>";
// "" for a timed profile's actor, which "why" already names.
func triggerWords(t string) string {
	if name, ok := strings.CutPrefix(t, "schedule:"); ok {
		return "schedule " + name
	}
	if name, ok := strings.CutPrefix(t, "external:"); ok {
		return "external trigger " + name
	}
	if t == "until" {
		return "the end of a timed profile"
	}
	return ""
}

// actorWords is who switched: a trigger in words, or the user or "admin".
func actorWords(a string) string {
	if w := triggerWords(a); w != "" {
		return w
	}
	return a
}

// opWords says in words what an outcome's operation does on the PBX, or that the PBX could not
// be read (an ObserveError).
func opWords(o presence.Outcome) string {
	if o.ObserveFailed() {
		return "read the PBX"
	}
	op := o.Op
	switch op.Kind {
	case presence.OpQueueAdd:
		if op.Member != nil && op.Member.Paused {
			return "join queue " + op.Queue + ", paused (" + op.Member.Reason + ")"
		}
		return "join queue " + op.Queue
	case presence.OpQueueRemove:
		return "leave queue " + op.Queue
	case presence.OpQueuePause:
		if op.Member != nil && op.Member.Paused {
			return "pause in queue " + op.Queue + " (" + op.Member.Reason + ")"
		}
		return "unpause in queue " + op.Queue
	case presence.OpQueuePenalty:
		if op.Member != nil {
			return fmt.Sprintf("penalty %d in queue %s", op.Member.Penalty, op.Queue)
		}
	case presence.OpDBPut:
		return fmt.Sprintf("set %s to %q", op.Key, op.Value)
	case presence.OpDBDel:
		return "clear " + op.Key
	case presence.OpDeviceState:
		return fmt.Sprintf("lamp %s %s", op.Key, strings.ToLower(op.Value))
	case presence.OpPresence:
		if op.Presence != nil {
			return "presence " + presence.PresenceLabel(op.Presence.State)
		}
	case presence.OpGlobal:
		return fmt.Sprintf("global %s = %q", op.Key, op.Value)
	case presence.OpWebhook:
		if op.Webhook != nil {
			return "call webhook " + op.Webhook.URL
		}
	}
	return op.String()
}

// resultWords says an outcome's result in words.
func resultWords(r presence.Result) string {
	switch r {
	case presence.ResultApplied:
		return "done"
	case presence.ResultUnchanged:
		return "already so"
	case presence.ResultFailed:
		return "failed"
	case presence.ResultPlanned:
		return "would be done"
	case presence.ResultReported:
		return "left as it is (reported)"
	case presence.ResultAdopted:
		return "accepted from the PBX"
	case presence.ResultDeferred:
		return "waits for the call to end"
	case presence.ResultSwitching:
		return "the DND key switches the profile"
	}
	return string(r)
}

// colourOf is a profile colour as an SVG fill: the configuration allows colour names and
// #rgb/#rrggbb only (presence/validate.go); anything else, or none, is grey.
func colourOf(c string) string {
	if c == "" {
		return "#8a94a6"
	}
	for _, r := range c {
		if !(r == '#' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "#8a94a6"
		}
	}
	return c
}

// initials are up to two letters of a name, for the avatar.
func initials(name string) string {
	var out []rune
	for _, f := range strings.Fields(name) {
		for _, r := range f {
			out = append(out, r)
			break
		}
		if len(out) == 2 {
			break
		}
	}
	return strings.ToUpper(string(out))
}
