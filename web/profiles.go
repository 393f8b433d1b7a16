package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/web/icon"
)

// The profile editor. Without JavaScript every button of the editor posts the whole profile
// as it stands on the page, with what to do ("op"): add an action, move one up or down,
// disable, enable or remove one, preview, or save. The server rebuilds the profile from the
// form, does it, and shows the editor again; only "save" stores (engine.SaveProfile, with the
// API's validation), so nothing half-edited reaches the PBX.

// chains are the two action chains of a profile, as the form names them.
var chains = []string{"on_enter", "on_exit"}

// actionFields says which fields of the editor each action kind has: those that mean
// something for it (presence.ActionFields), for every kind a personal profile may hold
// (webhooks are for system-wide profiles only).
func actionFields(k presence.ActionKind) ([]string, bool) {
	f := presence.ActionFields(k)
	return f, f != nil && k != presence.ActionWebhook
}

// kindNames say what each action kind does, for the editor.
var kindNames = map[presence.ActionKind]string{
	presence.ActionQueueLogin:   "Join queues",
	presence.ActionQueueLogout:  "Leave queues",
	presence.ActionQueuePause:   "Pause in queues",
	presence.ActionQueueUnpause: "Unpause in queues",
	presence.ActionDND:          "Do not disturb",
	presence.ActionFollowMe:     "Which phones ring (follow-me)",
	presence.ActionMobile:       "Mobile rings",
	presence.ActionForward:      "Call forwarding",
	presence.ActionNoAnswer:     "Unanswered calls go to",
	presence.ActionCallerID:     "Caller ID",
	presence.ActionLocation:     "Hot-desk location",
	presence.ActionPresence:     "Presence state",
	presence.ActionLamp:         "BLF lamp",
	presence.ActionVariable:     "Dialplan variable",
}

// actionRow is one action in the editor.
type actionRow struct {
	Chain  string
	Index  int
	Last   bool
	Action presence.Action
	Fields map[string]bool
	Errors []string
	// Queues, Families: the action's values as the form shows them.
	Queues string
}

// Has reports whether the row's kind has a field.
func (r actionRow) Has(f string) bool { return r.Fields[f] }

// RingTimes is the follow-me action's ring time per family as the form shows it: "10, 25".
func (r actionRow) RingTimes() string {
	parts := make([]string, len(r.Action.RingTimes))
	for i, t := range r.Action.RingTimes {
		parts[i] = strconv.Itoa(t)
	}
	return strings.Join(parts, ", ")
}

// HasFamily reports whether the action names a family (follow-me: rings it; caller_id: is
// for its phones).
func (r actionRow) HasFamily(f presence.Family) bool { return slices.Contains(r.Action.Families, f) }

// Name is the row's field name for f, e.g. "on_enter.2.queues".
func (r actionRow) Name(f string) string { return fmt.Sprintf("%s.%d.%s", r.Chain, r.Index, f) }

// ID is the row's element id for f.
func (r actionRow) ID(f string) string { return fmt.Sprintf("%s-%d-%s", r.Chain, r.Index, f) }

// Op is the value of one of the row's buttons, e.g. "up on_enter 2".
func (r actionRow) Op(verb string) string { return fmt.Sprintf("%s %s %d", verb, r.Chain, r.Index) }

// KindName says what the row's action does.
func (r actionRow) KindName() string {
	if n, ok := kindNames[r.Action.Kind]; ok {
		return n
	}
	return string(r.Action.Kind)
}

// profileEditor is the editor page.
type profileEditor struct {
	New       bool
	Locked    string // why the profile cannot be changed now; "" when it can
	Profile   *presence.Profile
	Rows      map[string][]actionRow
	Kinds     []presence.ActionKind
	KindNames map[presence.ActionKind]string
	Errors    map[string]string // field → problem
	Problems  []string
	Preview   *presence.SwitchResult
	// Previewing: the editor shows a preview, or why there is none (Problems).
	Previewing bool
	Families   []presence.Family
}

// profilesData is the list of profiles.
type profilesData struct {
	Active   string
	System   []*presence.Profile
	Personal []*presence.Profile
}

func (h *Handler) profilesPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	h.showProfiles(w, r, v, http.StatusOK, "", "")
}

func (h *Handler) showProfiles(w http.ResponseWriter, r *http.Request, v *viewer, code int, msg, errMsg string) {
	ctx := r.Context()
	ps, err := h.engine.Profiles(ctx, v.user.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.engine.Status(ctx, v.user.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := profilesData{Active: st.State.Profile}
	for _, p := range ps {
		if p.Personal() {
			d.Personal = append(d.Personal, p)
		} else {
			d.System = append(d.System, p)
		}
	}
	if msg == "" {
		switch r.URL.Query().Get("done") {
		case "saved":
			msg = "Profile saved."
		case "deleted":
			msg = "Profile deleted."
		}
	}
	h.render(w, r, code, "profiles", v, page{Title: "My profiles", Nav: "profiles", Message: msg, Error: errMsg, Data: d})
}

// editor builds the editor page for p.
func (h *Handler) editor(v *viewer, p *presence.Profile, isNew bool, locked string) *profileEditor {
	kinds := h.engine.Catalog().PersonalActions()
	kinds = slices.DeleteFunc(kinds, func(k presence.ActionKind) bool { _, ok := actionFields(k); return !ok })
	e := &profileEditor{New: isNew, Locked: locked, Profile: p, Rows: map[string][]actionRow{}, Kinds: kinds,
		KindNames: kindNames, Errors: map[string]string{}, Families: presence.Families()}
	for _, c := range chains {
		list := p.OnEnter
		if c == "on_exit" {
			list = p.OnExit
		}
		for i, a := range list {
			row := actionRow{Chain: c, Index: i, Last: i == len(list)-1, Action: a, Fields: map[string]bool{}}
			for _, f := range presence.ActionFields(a.Kind) {
				row.Fields[f] = true
			}
			row.Queues = strings.Join(a.Queues, ", ")
			e.Rows[c] = append(e.Rows[c], row)
		}
	}
	return e
}

// problems attaches a validation error's problems to the fields and rows they name.
func (e *profileEditor) problems(ve *presence.ValidationError) {
	for _, pr := range ve.Problems {
		e.Problems = append(e.Problems, pr)
		path, msg, _ := strings.Cut(pr, ": ")
		path = strings.TrimPrefix(path, "profile.")
		for _, c := range chains {
			for i := range e.Rows[c] {
				if strings.HasPrefix(path, fmt.Sprintf("%s[%d]", c, i)) {
					e.Rows[c][i].Errors = append(e.Rows[c][i].Errors, msg)
				}
			}
		}
		if !strings.Contains(path, "[") {
			e.Errors[path] = msg
		}
	}
}

func (h *Handler) profileEditPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	id := r.PathValue("id")
	if id == "new" {
		h.showEditor(w, r, v, http.StatusOK, h.editor(v, &presence.Profile{Visibility: presence.VisibilityPublic}, true, ""), "")
		return
	}
	ps, err := h.engine.Profiles(r.Context(), v.user.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(ps, func(p *presence.Profile) bool { return p.ID == id })
	if i < 0 {
		h.render(w, r, http.StatusNotFound, "error", v, page{Title: "Not found", Message: "You have no profile " + id + "."})
		return
	}
	locked, err := h.lockedReason(r, v, ps[i])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	msg := ""
	if r.URL.Query().Get("done") == "saved" {
		msg = "Profile saved."
	}
	h.showEditor(w, r, v, http.StatusOK, h.editor(v, ps[i], false, locked), msg)
}

// lockedReason says why the profile may not be changed now: it is system-wide, or active.
func (h *Handler) lockedReason(r *http.Request, v *viewer, p *presence.Profile) (string, error) {
	if !p.Personal() {
		return "This is a system-wide profile: only an admin changes it, in presenced's configuration.", nil
	}
	st, err := h.engine.Status(r.Context(), v.user.ID)
	if err != nil {
		return "", err
	}
	if st.State.Profile == p.ID {
		return "This profile is active: switch to another profile before you change or delete it.", nil
	}
	return "", nil
}

func (h *Handler) showEditor(w http.ResponseWriter, r *http.Request, v *viewer, code int, e *profileEditor, msg string) {
	title := "New profile"
	if !e.New {
		title = "Profile " + e.Profile.Name
	}
	h.render(w, r, code, "profile", v, page{Title: title, Nav: "profiles", Message: msg, Data: e})
}

// profileOp edits, previews or saves the profile the form holds, as its op says.
func (h *Handler) profileOp(w http.ResponseWriter, r *http.Request, v *viewer) {
	id := r.PathValue("id")
	isNew := id == "new"
	p, err := profileFromForm(r.PostForm)
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "error", v, page{Title: "Bad request", Message: err.Error()})
		return
	}
	op := strings.Fields(r.PostForm.Get("op"))
	if len(op) == 0 {
		op = []string{"save"}
	}
	if !isNew {
		p.ID = id
		ps, err := h.engine.Profiles(r.Context(), v.user.ID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if i := slices.IndexFunc(ps, func(q *presence.Profile) bool { return q.ID == id }); i >= 0 {
			locked, err := h.lockedReason(r, v, ps[i])
			if err != nil {
				h.fail(w, r, err)
				return
			}
			if locked != "" {
				// A locked profile's form sends no fields: what is stored is previewed.
				e := h.editor(v, ps[i], false, locked)
				code := http.StatusConflict
				if op[0] == "preview" {
					code = http.StatusOK
					if !h.preview(w, r, v, e, nil) {
						return
					}
				}
				h.showEditor(w, r, v, code, e, "")
				return
			}
		}
	}
	switch op[0] {
	case "save":
		err := icon.Check(p, nil)
		if err != nil {
			err = icon.Check(p, h.engine.CheckProfile(r.Context(), v.user.ID, p))
		} else {
			err = h.engine.SaveProfile(r.Context(), v.user.ID, p)
		}
		var ve *presence.ValidationError
		if errors.As(err, &ve) {
			e := h.editor(v, p, isNew, "")
			e.problems(ve)
			h.showEditor(w, r, v, http.StatusUnprocessableEntity, e, "")
			return
		}
		if msg, ok := userError(err); ok {
			e := h.editor(v, p, isNew, "")
			e.Problems = []string{msg}
			h.showEditor(w, r, v, http.StatusConflict, e, "")
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/profiles/"+url.PathEscape(p.ID)+"?done=saved", http.StatusSeeOther)
		return
	case "preview":
		// The profile as edited, checked as saving checks it, stored nowhere.
		e := h.editor(v, p, isNew, "")
		code := http.StatusOK
		if !h.preview(w, r, v, e, p) {
			return
		}
		if len(e.Problems) > 0 {
			code = http.StatusUnprocessableEntity
		}
		h.showEditor(w, r, v, code, e, "")
		return
	case "add":
		if len(op) == 2 && slices.Contains(chains, op[1]) {
			kind := presence.ActionKind(r.PostForm.Get("add_" + op[1]))
			if _, ok := actionFields(kind); ok {
				a := newAction(kind)
				if op[1] == "on_enter" {
					p.OnEnter = append(p.OnEnter, a)
				} else {
					p.OnExit = append(p.OnExit, a)
				}
			}
		}
	case "up", "down", "toggle", "remove":
		if len(op) == 3 && slices.Contains(chains, op[1]) {
			i, _ := strconv.Atoi(op[2])
			list := &p.OnEnter
			if op[1] == "on_exit" {
				list = &p.OnExit
			}
			editChain(list, op[0], i)
		}
	}
	h.showEditor(w, r, v, http.StatusOK, h.editor(v, p, isNew, ""), "")
}

// preview fills the editor's preview of switching to its profile: to candidate, a personal
// profile as edited (checked as saving checks it, its problems put at the fields), or when nil
// to the stored profile. False when it failed and the answer was written.
func (h *Handler) preview(w http.ResponseWriter, r *http.Request, v *viewer, e *profileEditor, candidate *presence.Profile) bool {
	e.Previewing = true
	var opts presence.PreviewOptions
	if candidate != nil {
		if err := icon.Check(candidate, nil); err != nil {
			err = icon.Check(candidate, h.engine.CheckProfile(r.Context(), v.user.ID, candidate))
			var ve *presence.ValidationError
			if errors.As(err, &ve) {
				e.problems(ve)
				return true
			}
		}
		opts.Candidate = candidate
	}
	res, err := h.engine.PreviewWith(r.Context(), presence.SwitchRequest{User: v.user.ID, Profile: e.Profile.ID,
		Source: presence.SourceAPI, Actor: v.actor()}, opts)
	var ve *presence.ValidationError
	if errors.As(err, &ve) {
		e.problems(ve)
		return true
	}
	if msg, ok := userError(err); ok {
		e.Problems = []string{msg}
		return true
	}
	if err != nil {
		h.fail(w, r, err)
		return false
	}
	e.Preview = res
	return true
}

// editChain moves, toggles or removes action i of the chain.
func editChain(list *[]presence.Action, verb string, i int) {
	l := *list
	if i < 0 || i >= len(l) {
		return
	}
	switch verb {
	case "up":
		if i > 0 {
			l[i-1], l[i] = l[i], l[i-1]
		}
	case "down":
		if i < len(l)-1 {
			l[i+1], l[i] = l[i], l[i+1]
		}
	case "toggle":
		l[i].Disabled = !l[i].Disabled
	case "remove":
		*list = slices.Delete(l, i, i+1)
	}
}

// newAction is an action of the kind as the editor adds it: with values that are valid where
// a kind needs one.
func newAction(kind presence.ActionKind) presence.Action {
	a := presence.Action{Kind: kind}
	switch kind {
	case presence.ActionQueueLogin, presence.ActionQueueLogout, presence.ActionQueuePause, presence.ActionQueueUnpause:
		a.Queues = presence.QueueSelector{"all"}
	case presence.ActionFollowMe:
		a.Families = []presence.Family{presence.FamilyDesk}
		a.Order = presence.RingSimultaneous
	case presence.ActionForward:
		a.Type = presence.ForwardUnconditional
	case presence.ActionPresence:
		a.State = "available"
	}
	return a
}

// maxFormActions bounds the actions a form may hold (the catalog's limit is lower).
const maxFormActions = 100

// profileFromForm reads the profile the editor's form holds. Values are checked by the
// engine when the profile is saved; this only refuses what is not a form of the editor.
func profileFromForm(f url.Values) (*presence.Profile, error) {
	p := &presence.Profile{
		ID: strings.TrimSpace(f.Get("id")), Name: strings.TrimSpace(f.Get("name")),
		Colour: strings.TrimSpace(f.Get("colour")), Icon: strings.TrimSpace(f.Get("icon")),
		Visibility: presence.Visibility(f.Get("visibility")), Activation: strings.TrimSpace(f.Get("activation")),
		Sticky: f.Get("sticky") == "on", Presence: f.Get("presence"),
	}
	if s := strings.TrimSpace(f.Get("priority")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("priority: %q is not a whole number", s)
		}
		p.Priority = n
	}
	for _, c := range chains {
		n, _ := strconv.Atoi(f.Get(c + ".n"))
		if n < 0 || n > maxFormActions {
			return nil, fmt.Errorf("%s: %d actions", c, n)
		}
		for i := range n {
			get := func(field string) string { return strings.TrimSpace(f.Get(fmt.Sprintf("%s.%d.%s", c, i, field))) }
			a := presence.Action{Kind: presence.ActionKind(get("action"))}
			fields, ok := actionFields(a.Kind)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: unknown action %q", c, i, a.Kind)
			}
			a.Disabled = get("enabled") != "on"
			for _, field := range fields {
				switch field {
				case "queues":
					for q := range strings.SplitSeq(get("queues"), ",") {
						if q = strings.TrimSpace(q); q != "" {
							a.Queues = append(a.Queues, q)
						}
					}
				case "reason":
					a.Reason = get("reason")
				case "on":
					if get("on") != "on" {
						off := false
						a.On = &off
					}
				case "families":
					for _, fam := range f[fmt.Sprintf("%s.%d.families", c, i)] {
						a.Families = append(a.Families, presence.Family(fam))
					}
				case "order":
					a.Order = presence.RingOrder(get("order"))
				case "ring_time":
					if s := get("ring_time"); s != "" {
						n, err := strconv.Atoi(s)
						if err != nil {
							return nil, fmt.Errorf("%s[%d].ring_time: %q is not a whole number", c, i, s)
						}
						a.RingTime = n
					}
				case "ring_times":
					for s := range strings.SplitSeq(get("ring_times"), ",") {
						if s = strings.TrimSpace(s); s == "" {
							continue
						}
						n, err := strconv.Atoi(s)
						if err != nil {
							return nil, fmt.Errorf("%s[%d].ring_times: %q is not a whole number", c, i, s)
						}
						a.RingTimes = append(a.RingTimes, n)
					}
				case "type":
					a.Type = presence.ForwardType(get("type"))
				case "to":
					a.To = get("to")
				case "value":
					a.Value = get("value")
				case "device":
					a.Device = get("device")
				case "state":
					a.State = get("state")
				case "message":
					a.Message = get("message")
				case "scope":
					a.Scope = get("scope")
				case "name":
					a.Name = get("name")
				}
			}
			if c == "on_enter" {
				p.OnEnter = append(p.OnEnter, a)
			} else {
				p.OnExit = append(p.OnExit, a)
			}
		}
	}
	return p, nil
}

// deleteProfile deletes a personal profile; the engine refuses the active one.
func (h *Handler) deleteProfile(w http.ResponseWriter, r *http.Request, v *viewer) {
	err := h.engine.DeleteProfile(r.Context(), v.user.ID, r.PathValue("id"))
	if errors.Is(err, presence.ErrProfileActive) {
		h.showProfiles(w, r, v, http.StatusConflict, "",
			"That profile is active: switch to another profile before you delete it.")
		return
	}
	if msg, ok := userError(err); ok {
		h.showProfiles(w, r, v, http.StatusConflict, "", msg)
		return
	}
	if errors.Is(err, presence.ErrUnknownProfile) {
		h.showProfiles(w, r, v, http.StatusNotFound, "", "There is no such profile.")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/profiles?done=deleted", http.StatusSeeOther)
}
