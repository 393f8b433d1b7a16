package web

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// signinData is what the sign-in page shows.
type signinData struct {
	Name, Next, Token string
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	if v, err := h.viewerOf(r); err == nil {
		http.Redirect(w, r, home(v), http.StatusSeeOther)
		return
	}
	h.showSignin(w, r, http.StatusOK, signinData{Next: localPath(r.URL.Query().Get("next"))}, "")
}

// showSignin renders the sign-in form with a fresh double-submit token.
func (h *Handler) showSignin(w http.ResponseWriter, r *http.Request, code int, d signinData, msg string) {
	d.Token = rand.Text()
	h.setCookie(w, r, signinCookie, d.Token, 3600)
	h.render(w, r, code, "signin", nil, page{Title: "Sign in", Error: msg, Data: d})
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		h.showSignin(w, r, http.StatusBadRequest, signinData{}, "The form could not be read.")
		return
	}
	d := signinData{Name: strings.TrimSpace(r.PostForm.Get("user")), Next: localPath(r.PostForm.Get("next"))}
	c, err := r.Cookie(signinCookie)
	if err != nil || !sameOrigin(r) || !tokenMatches(r.PostForm.Get("csrf"), c.Value) {
		h.showSignin(w, r, http.StatusForbidden, d, "This form is out of date. Please sign in again.")
		return
	}
	var addr string
	if h.opts.Throttle != nil {
		addr = throttle.Key(throttle.ClientAddr(r, h.opts.TrustedProxies))
		if wait := h.opts.Throttle.Blocked(r.Context(), addr); wait > 0 {
			h.showSignin(w, r, http.StatusTooManyRequests, d, fmt.Sprintf(
				"Too many failed sign-ins from your address: try again in %s.", wait.Round(time.Minute)))
			return
		}
	}
	who, err := h.acc.Authenticate(r.Context(), d.Name, r.PostForm.Get("password"))
	if h.opts.Throttle != nil && (errors.Is(err, account.ErrWrongPassword) || errors.As(err, new(*account.LockedError))) {
		h.opts.Throttle.Fail(r.Context(), addr)
	}
	var locked *account.LockedError
	switch {
	case errors.As(err, &locked):
		h.showSignin(w, r, http.StatusTooManyRequests, d, fmt.Sprintf(
			"Too many wrong passwords: sign-in is locked for %s. Ask an admin for a set-password link if you forgot it.",
			locked.For.Round(time.Minute)))
		return
	case errors.Is(err, account.ErrWrongPassword):
		h.showSignin(w, r, http.StatusUnauthorized, d, "Wrong user or password.")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	s, err := h.acc.Start(r.Context(), who)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, signinCookie, "", -1)
	h.setCookie(w, r, sessionCookie, s.ID, 0)
	h.log.Info("signed in", "user", who.ID())
	to := d.Next
	if to == "" {
		to = "/"
		if who.User == nil {
			to = "/admin"
		}
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// localPath keeps a "next" address only when it is a path of this site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || len(p) > 500 {
		return ""
	}
	return p
}

// home is where a signed-in viewer starts.
func home(v *viewer) string {
	if v.user == nil {
		return "/admin"
	}
	return "/"
}

func (h *Handler) signout(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := h.acc.End(r.Context(), v.session.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// setPasswordData is what the set-password page shows.
type setPasswordData struct{ Token string }

func (h *Handler) setPasswordPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "setpassword", nil, page{Title: "Set your password",
		Data: setPasswordData{Token: r.URL.Query().Get("token")}})
}

// setPassword spends a set-password link. The link's token is the proof: it is random, secret
// and single-use, so the form needs no session.
func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		h.render(w, r, http.StatusBadRequest, "error", nil, page{Title: "Bad request", Message: "The form could not be read."})
		return
	}
	tok, pw := r.PostForm.Get("token"), r.PostForm.Get("password")
	d := setPasswordData{Token: tok}
	if pw != r.PostForm.Get("confirm") {
		h.render(w, r, http.StatusUnprocessableEntity, "setpassword", nil, page{Title: "Set your password",
			Error: "The two passwords differ.", Data: d})
		return
	}
	id, err := h.acc.UseLink(r.Context(), tok, pw)
	var perr *account.PasswordError
	switch {
	case errors.As(err, &perr):
		h.render(w, r, http.StatusUnprocessableEntity, "setpassword", nil, page{Title: "Set your password",
			Error: "The password needs " + perr.Reason + ".", Data: d})
		return
	case errors.Is(err, account.ErrBadLink):
		h.render(w, r, http.StatusNotFound, "error", nil, page{Title: "Link not valid",
			Message: "This set-password link is unknown, used or expired. Ask an admin for a new one."})
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	h.log.Info("password set with a link", "user", id)
	h.showSignin(w, r, http.StatusOK, signinData{Name: string(id)}, "")
}

// target is the user a request acts on: the viewer, or for an admin the user the form or
// query names. Anyone else naming another user gets ok false.
func (h *Handler) target(v *viewer, id string) (*presence.User, bool) {
	if id == "" || (v.user != nil && id == string(v.user.ID)) {
		return v.user, v.user != nil
	}
	if !v.admin {
		return nil, false
	}
	return h.engine.Catalog().User(presence.UserID(id))
}

// statusData is the status page: the user's status, why, and the profiles to switch to.
type statusData struct {
	User     *presence.User
	Own      bool // the viewer's own status (not an admin looking at someone)
	Status   *presence.UserStatus
	Active   *presence.Profile
	Profiles []*presence.Profile
	Names    map[string]string // profile id → name
	Why      *trigger.Why
	Until    []struct{ Value, Label string }
	HasUntil bool
	Info     string
	// Devices are the user's devices to choose from, and Device the one this browser is at
	// (device.go); only on the user's own status.
	Devices []deviceChoice
	Device  *deviceChoice
	// Calendar is the line about the user's calendar (calendar.go), HasCalendar whether they
	// have one, CalendarStale whether its last poll failed.
	Calendar      string
	HasCalendar   bool
	CalendarStale bool
}

// WillNotRing is the will-not-ring warning in words naming the device the browser is at; ""
// when no device is chosen (the status's own words are shown then).
func (d statusData) WillNotRing(w presence.Warning) string {
	if d.Device == nil || w.Code != presence.WarningWillNotRing {
		return ""
	}
	return "Your " + d.Device.Label + " will not ring in this profile. If it should ring, edit the profile or choose another one."
}

// Name is a profile's name, or its id when it is unknown.
func (d statusData) Name(id string) string {
	if n, ok := d.Names[id]; ok {
		return n
	}
	return id
}

func (h *Handler) status(r *http.Request, u *presence.User, own bool) (statusData, error) {
	ctx := r.Context()
	d := statusData{User: u, Own: own, Until: untilChoices, HasUntil: h.opts.Triggers != nil, Names: map[string]string{}}
	var opts presence.StatusOptions
	if own {
		d.Devices = devicesOf(u)
		if dev, ok := deviceOf(r, u); ok {
			d.Device = &deviceChoice{Dial: dev.Dial, Label: deviceLabel(dev)}
			opts.Device = dev.Dial
		}
	}
	st, err := h.engine.StatusWith(ctx, u.ID, opts)
	if err != nil {
		return d, err
	}
	d.Status = st
	if d.Profiles, err = h.engine.Profiles(ctx, u.ID); err != nil {
		return d, err
	}
	for _, p := range d.Profiles {
		d.Names[p.ID] = p.Name
	}
	d.Active = presence.FindProfile(d.Profiles, st.State.Profile)
	if h.opts.Triggers != nil && st.Switched {
		if d.Why, err = h.opts.Triggers.Why(ctx, u.ID, st.State); err != nil {
			return d, err
		}
	}
	d.Calendar, d.CalendarStale, d.HasCalendar = h.calendarLine(ctx, u)
	return d, nil
}

func (h *Handler) statusPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	u, ok := h.target(v, r.URL.Query().Get("user"))
	if !ok {
		if v.user == nil {
			http.Redirect(w, r, "/admin", http.StatusSeeOther)
			return
		}
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "You may see only your own status."})
		return
	}
	h.showStatus(w, r, v, u, http.StatusOK, flash(r), "", "")
}

// flash is the notice a redirect after a POST asks for.
func flash(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "switched":
		return "Switched."
	case "fixed":
		return "Your PBX state was put back in line with your profile."
	case "password":
		return "Your password was changed."
	case "device":
		return "Noted: this browser is at the device you chose."
	}
	return ""
}

func (h *Handler) showStatus(w http.ResponseWriter, r *http.Request, v *viewer, u *presence.User, code int, msg, errMsg, info string) {
	d, err := h.status(r, u, v.user != nil && v.user.ID == u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Info = info
	title := "My status"
	if !d.Own {
		title = "Status of " + u.DisplayName()
	}
	h.render(w, r, code, "status", v, page{Title: title, Nav: "status", Message: msg, Error: errMsg, Data: d})
}

// statusCard is the status card alone, which the page's script fetches when a live update says
// the user's state changed.
func (h *Handler) statusCard(w http.ResponseWriter, r *http.Request, v *viewer) {
	u, ok := h.target(v, r.URL.Query().Get("user"))
	if !ok {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	d, err := h.status(r, u, v.user != nil && v.user.ID == u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderPart(w, "status", "card", v, page{Data: d})
}

// back is where a POST about u returns to: the status page, naming u for an admin.
func back(v *viewer, u *presence.User, done string) string {
	q := url.Values{"done": {done}}
	if v.user == nil || v.user.ID != u.ID {
		q.Set("user", string(u.ID))
	}
	return "/?" + q.Encode()
}

func (h *Handler) switchProfile(w http.ResponseWriter, r *http.Request, v *viewer) {
	u, ok := h.target(v, r.PostForm.Get("user"))
	if !ok {
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "You may switch only yourself."})
		return
	}
	profile, info := r.PostForm.Get("profile"), strings.TrimSpace(r.PostForm.Get("info"))
	// "until 16:00" is in the user's own time zone (My schedule), else the configured one.
	loc := h.opts.Location
	if u.TimeZone != "" {
		if l, err := time.LoadLocation(u.TimeZone); err == nil {
			loc = l
		}
	}
	if h.opts.Triggers != nil {
		l, _, err := h.opts.Triggers.TimeZone(r.Context(), u.ID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		loc = l
	}
	until, err := parseUntil(r.PostForm.Get("until"), r.PostForm.Get("until_time"), h.now(), loc)
	if err == nil && !until.IsZero() && h.opts.Triggers == nil {
		err = errors.New("timed profiles need the trigger scheduler")
	}
	if err != nil {
		h.showStatus(w, r, v, u, http.StatusUnprocessableEntity, "", "Until: "+err.Error(), info)
		return
	}
	if profile == "" {
		h.showStatus(w, r, v, u, http.StatusUnprocessableEntity, "", "Choose a profile.", info)
		return
	}
	res, err := h.engine.Switch(r.Context(), presence.SwitchRequest{User: u.ID, Profile: profile, Info: info,
		Source: presence.SourceAPI, Actor: v.actor(), Until: until})
	if msg, ok := userError(err); ok {
		h.showStatus(w, r, v, u, http.StatusUnprocessableEntity, "", msg, info)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !until.IsZero() {
		if err := h.opts.Triggers.Timed(r.Context(), u.ID, res.State); err != nil {
			h.fail(w, r, fmt.Errorf("switched, but the return at %s is not scheduled: %w", until.Format(time.RFC3339), err))
			return
		}
	}
	http.Redirect(w, r, back(v, u, "switched"), http.StatusSeeOther)
}

// userError is the message for an error the person can act on.
func userError(err error) (string, bool) {
	var ve *presence.ValidationError
	switch {
	case err == nil:
		return "", false
	case errors.As(err, &ve):
		return strings.Join(ve.Problems, "; "), true
	case errors.Is(err, presence.ErrUnknownProfile):
		return "There is no such profile.", true
	case errors.Is(err, presence.ErrProfileActive):
		return "This profile is active: switch to another one first.", true
	case errors.Is(err, presence.ErrSystemProfile):
		return "System-wide profiles cannot be changed here.", true
	}
	return "", false
}

func (h *Handler) fix(w http.ResponseWriter, r *http.Request, v *viewer) {
	u, ok := h.target(v, r.PostForm.Get("user"))
	if !ok {
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "You may fix only your own state."})
		return
	}
	if _, err := h.engine.Enforce(r.Context(), u.ID, v.actor()); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, back(v, u, "fixed"), http.StatusSeeOther)
}

// colleaguesData is the colleagues page.
type colleaguesData struct {
	Query string
	// Rows are the people's rows (rowHTML), joined: one value for the template to print.
	Rows template.HTML
	N    int
}

func (h *Handler) colleaguesPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	opts := presence.EveryoneOptions{Admin: v.admin}
	if v.user != nil {
		opts.Viewer = v.user.ID
	}
	all, err := h.hub.everyone(r.Context(), h.now(), opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := colleaguesData{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	var rows strings.Builder
	for _, e := range all {
		if matches(e, d.Query) {
			rows.WriteString(string(h.rowHTML(e, e.User == opts.Viewer)))
			d.N++
		}
	}
	d.Rows = template.HTML(rows.String()) // each row escaped by rowHTML
	h.render(w, r, http.StatusOK, "colleagues", v, page{Title: "Colleagues", Nav: "colleagues", Data: d})
}

// matches reports whether a colleague's entry matches a search: name, extension or what they
// show, case-insensitive.
func matches(e presence.PresenceEntry, q string) bool {
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	for _, s := range []string{e.Name, e.Extension, e.Label, e.Info, string(e.User)} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// journalData is the journal page.
type journalData struct {
	User    *presence.User
	Own     bool
	Entries []presence.JournalEntry
}

func (h *Handler) journalPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	u, ok := h.target(v, r.URL.Query().Get("user"))
	if !ok && v.user == nil && r.URL.Query().Get("user") == "" {
		http.Redirect(w, r, "/admin", http.StatusSeeOther) // the admin by token has no journal of their own
		return
	}
	if !ok {
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "You may read only your own journal."})
		return
	}
	es, err := h.engine.Journal(r.Context(), u.ID, 50)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	own := v.user != nil && v.user.ID == u.ID
	title := "My journal"
	if !own {
		title = "Journal of " + u.DisplayName()
	}
	h.render(w, r, http.StatusOK, "journal", v, page{Title: title, Nav: "journal", Data: journalData{User: u, Own: own, Entries: es}})
}

// passwordData is the change-password page: a problem is shown at the field it is about.
type passwordData struct {
	Errors map[string]string // field (current, password, confirm) → problem
}

func (h *Handler) passwordPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	msg := ""
	if r.URL.Query().Get("done") == "password" {
		msg = "Your password was changed."
	}
	h.render(w, r, http.StatusOK, "password", v, page{Title: "Password", Nav: "password", Message: msg, Data: passwordData{}})
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, v *viewer) {
	// fail shows the page again with the problem at field, or at the top when field is "".
	fail := func(code int, field, msg string) {
		p := page{Title: "Password", Nav: "password", Data: passwordData{Errors: map[string]string{field: msg}}}
		if field == "" {
			p.Error, p.Data = msg, passwordData{}
		}
		h.render(w, r, code, "password", v, p)
	}
	if v.user == nil {
		fail(http.StatusForbidden, "", "The admin signed in with the admin token has no password here.")
		return
	}
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		fail(http.StatusUnprocessableEntity, "confirm", "The two new passwords differ.")
		return
	}
	err := h.acc.ChangePassword(r.Context(), v.user.ID, r.PostForm.Get("current"), pw)
	var perr *account.PasswordError
	var locked *account.LockedError
	switch {
	case errors.As(err, &perr):
		fail(http.StatusUnprocessableEntity, "password", "The new password needs "+perr.Reason+".")
	case errors.As(err, &locked):
		fail(http.StatusTooManyRequests, "", "Too many wrong passwords: locked for "+locked.For.Round(time.Minute).String()+".")
	case errors.Is(err, account.ErrWrongPassword):
		fail(http.StatusUnprocessableEntity, "current", "The current password is wrong.")
	case err != nil:
		h.fail(w, r, err)
	default:
		// A new password ends the user's sessions, this one too: a new one for this browser.
		s, err := h.acc.Start(r.Context(), account.Identity{User: v.user, Admin: v.admin})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.setCookie(w, r, sessionCookie, s.ID, 0)
		http.Redirect(w, r, "/password?done=password", http.StatusSeeOther)
	}
}

// adminFilters are the admin page's filters, as presence.UserSummary.Matches knows them.
var adminFilters = []string{"", "out_of_sync", "reported", "on_call"}

// adminData is the admin page.
type adminData struct {
	Health   *Health
	Filter   string
	Profile  string
	Profiles []*presence.Profile
	Rows     []presence.UserSummary
	Counts   map[string]int
	Link     *account.Link
	LinkURL  string
}

func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	h.showAdmin(w, r, v, nil, "")
}

func (h *Handler) showAdmin(w http.ResponseWriter, r *http.Request, v *viewer, link *account.Link, linkURL string) {
	if !v.admin {
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "The admin page is for admins."})
		return
	}
	ctx := r.Context()
	all, err := h.engine.Overview(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	d := adminData{Filter: q.Get("filter"), Profile: q.Get("profile"), Profiles: h.engine.Catalog().Profiles,
		Counts: map[string]int{}, Link: link, LinkURL: linkURL}
	if h.opts.Health != nil {
		hl := h.opts.Health(ctx)
		d.Health = &hl
	}
	for _, row := range all {
		for _, f := range adminFilters {
			if f != "" && row.Matches(f) {
				d.Counts[f]++
			}
		}
		if row.Matches(d.Filter) && (d.Profile == "" || row.Profile == d.Profile) {
			d.Rows = append(d.Rows, row)
		}
	}
	slices.SortStableFunc(d.Rows, func(a, b presence.UserSummary) int { return cmp.Compare(boolInt(a.InSync), boolInt(b.InSync)) })
	h.render(w, r, http.StatusOK, "admin", v, page{Title: "Admin", Nav: "admin", Data: d})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// adminLink makes a set-password link for a user and shows it once.
func (h *Handler) adminLink(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.admin {
		h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused", Message: "The admin page is for admins."})
		return
	}
	link, err := h.acc.NewLink(r.Context(), presence.UserID(r.PostForm.Get("user")), 0)
	if errors.Is(err, presence.ErrUnknownUser) {
		h.render(w, r, http.StatusNotFound, "error", v, page{Title: "Unknown user", Message: "There is no such user."})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	scheme := "http"
	if h.secure(r) {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: "/set-password", RawQuery: url.Values{"token": {link.Token}}.Encode()}
	h.showAdmin(w, r, v, &link, u.String())
}
