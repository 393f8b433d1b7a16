package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
	"github.com/presenced/presenced/web/icon"
)

// Limits of the journal query.
const (
	defaultJournalLimit = 50
	maxJournalLimit     = 1000
)

// switchBody is the body of a switch and of its preview.
type switchBody struct {
	Profile string `json:"profile"`
	Info    string `json:"info,omitempty"`
	// Until makes the profile timed: an RFC 3339 time, a duration ("90m"), a time of day
	// ("16:00": today, or tomorrow when past), "tomorrow 08:00", or a weekday ("monday",
	// "fri 12:30"), in the user's time zone (trigger.ParseUntil); at that moment the user
	// returns to the previous profile.
	Until string `json:"until,omitempty"`
}

// switchAnswer is a switch's result with the time a timed profile ends, resolved.
type switchAnswer struct {
	*presence.SwitchResult
	// Until is when the profile ends, in the user's time zone, as the body's until resolved.
	Until *time.Time `json:"until,omitempty"`
}

// maxUntil bounds how far ahead a timed profile may end.
const maxUntil = 366 * 24 * time.Hour

// until parses the body's until relative to now, in loc; zero when absent.
func (b switchBody) until(now time.Time, loc *time.Location) (time.Time, error) {
	if b.Until == "" {
		return time.Time{}, nil
	}
	t, err := trigger.ParseUntil(b.Until, now, loc)
	if err != nil {
		return time.Time{}, invalid("until", err.Error())
	}
	if !t.After(now) {
		return time.Time{}, invalid("until", fmt.Sprintf("%q is not in the future", b.Until))
	}
	if t.Sub(now) > maxUntil {
		return time.Time{}, invalid("until", fmt.Sprintf("%q is more than a year ahead", b.Until))
	}
	return t, nil
}

// validate checks what the engine does not: the info is checked by the engine against the
// configured limits (presence.Catalog.ValidateInfo), for every way of switching.
func (b switchBody) validate() error {
	if b.Profile == "" {
		return invalid("profile", "required")
	}
	return nil
}

// switchProfile switches the user the path names, or previews the switch.
func (h *Handler) switchProfile(preview bool) func(http.ResponseWriter, *http.Request, caller) error {
	run := h.engine.Switch
	if preview {
		run = h.engine.Preview
	}
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		var body switchBody
		if err := h.decode(w, r, &body); err != nil {
			return err
		}
		if err := body.validate(); err != nil {
			return err
		}
		loc := time.Local
		var err error
		if h.triggers != nil {
			// The user's own zone (My schedule), else the configured one.
			if loc, _, err = h.triggers.TimeZone(r.Context(), pathUser(r)); err != nil {
				return err
			}
		}
		var until time.Time
		until, err = body.until(h.now(), loc)
		if err != nil {
			return err
		}
		if !until.IsZero() && h.triggers == nil {
			return invalid("until", "timed profiles need the trigger scheduler, which this API was built without")
		}
		res, err := run(r.Context(), presence.SwitchRequest{
			User: pathUser(r), Profile: body.Profile, Info: body.Info, Source: presence.SourceAPI, Actor: c.actor(),
			Until: until,
		})
		if err != nil {
			return err
		}
		if !until.IsZero() && !preview {
			if err := h.triggers.Timed(r.Context(), pathUser(r), res.State); err != nil {
				return fmt.Errorf("switched, but the return at %s is not scheduled: %w", until.Format(time.RFC3339), err)
			}
		}
		ans := switchAnswer{SwitchResult: switchView(res)}
		if !until.IsZero() {
			u := until.In(loc)
			ans.Until = &u
		}
		writeJSON(w, http.StatusOK, ans)
		return nil
	}
}

// orEmpty is s, or an empty slice for nil: the document's arrays are never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// switchView is a switch's (preview's, reconcile's) result as the API answers it: its
// outcomes an array even when there was nothing to do.
func switchView(res *presence.SwitchResult) *presence.SwitchResult {
	v := *res
	v.Outcomes = orEmpty(v.Outcomes)
	return &v
}

// userView is a user as the API answers it: devices and queues arrays even when there are
// none. The catalog's user is not changed.
func userView(u *presence.User) *presence.User {
	if u == nil {
		return nil
	}
	v := *u
	v.Devices, v.Queues = orEmpty(v.Devices), orEmpty(v.Queues)
	return &v
}

// userStatusView is a user's status as the API shows it: the active profile and why, the
// desired and observed PBX state, and the drift. It never holds the PIN or the token
// (presence.User does not encode them).
type userStatusView struct {
	User *presence.User `json:"user"`
	// Switched is false for a user presenced has never switched; then the profile fields are empty.
	Switched bool            `json:"switched"`
	Profile  string          `json:"profile,omitempty"`
	Previous string          `json:"previous,omitempty"`
	Info     string          `json:"info,omitempty"`
	Since    time.Time       `json:"since,omitzero"`
	Source   presence.Source `json:"source,omitempty"`
	Actor    string          `json:"actor,omitempty"`
	Sticky   bool            `json:"sticky"`
	// Until is when the active profile ends (a timed profile, a schedule's range).
	Until *time.Time `json:"until,omitempty"`
	// Trigger is what set the active profile while triggers hold the user: "schedule:<entry>",
	// "external:<name>", or the actor of a timed profile.
	Trigger string `json:"trigger,omitempty"`
	// ReturnsTo is where the user goes when the active triggers end.
	ReturnsTo string `json:"returns_to,omitempty"`
	// ActiveTriggers are the triggers holding the user, the winner decided by priority.
	ActiveTriggers []trigger.Activation `json:"active_triggers,omitempty"`
	// NextChange is the next scheduled change of profile, within a week.
	NextChange *trigger.Change   `json:"next_change,omitempty"`
	Desired    *presence.Desired `json:"desired,omitempty"`
	Observed   *presence.Target  `json:"observed,omitempty"`
	Drift      []presence.Op     `json:"drift"`
	// Differences says what drifted in words, with the policy that applies to each.
	Differences []presence.Difference `json:"differences"`
	// Warnings: the device status does not match the profile; a device in use will not ring.
	Warnings []presence.Warning `json:"warnings"`
	// Pending lists queue changes waiting for the user's call to end.
	Pending []presence.Op `json:"pending"`
	// OnCall names the user's device in a call.
	OnCall string `json:"on_call,omitempty"`
	// Adopted is what the desired state accepted from the PBX (adopt policy) until the next switch.
	Adopted *presence.Target `json:"adopted,omitempty"`
	// InSync is true when the PBX could be read and shows what the profile wants.
	InSync        bool       `json:"in_sync"`
	ObserveError  string     `json:"observe_error,omitempty"`
	RepairDue     *time.Time `json:"repair_due,omitempty"`
	RepairAttempt int        `json:"repair_attempt,omitempty"`
}

func (h *Handler) userStatus(w http.ResponseWriter, r *http.Request, _ caller) error {
	device := r.URL.Query().Get("device")
	if len(device) > 200 || strings.ContainsFunc(device, unicode.IsControl) {
		return &apiError{status: http.StatusBadRequest, field: "device",
			msg: "device: at most 200 characters, no control characters"}
	}
	if u, ok := h.engine.Catalog().User(pathUser(r)); ok && device != "" {
		// Only the user's own devices: the warning is about where they take calls.
		d, ok := ownDevice(u, device)
		if !ok {
			return &apiError{status: http.StatusBadRequest, field: "device",
				msg: fmt.Sprintf("device: %q is not one of %s's devices", device, u.ID)}
		}
		device = d
	}
	st, err := h.engine.StatusWith(r.Context(), pathUser(r), presence.StatusOptions{Device: device})
	if err != nil {
		return err
	}
	v := userStatusView{
		User: userView(st.User), Switched: st.Switched,
		Profile: st.State.Profile, Previous: st.State.Previous, Info: st.State.Info, Since: st.State.Since,
		Source: st.State.Source, Actor: st.State.Actor, Sticky: st.State.Sticky,
		Desired: st.Desired, Observed: st.Observed, Drift: st.Drift,
		Differences: orEmpty(st.Differences), Warnings: orEmpty(st.Warnings), Pending: orEmpty(st.Pending), OnCall: st.OnCall,
		Adopted:      st.State.Adopted,
		InSync:       st.ObserveError == "" && len(st.Drift) == 0,
		ObserveError: st.ObserveError, RepairDue: st.RepairDue, RepairAttempt: st.RepairAttempt,
	}
	v.Drift = orEmpty(v.Drift)
	if st.Switched {
		v.Until = st.State.Until
	}
	if h.triggers != nil {
		why, err := h.triggers.Why(r.Context(), st.User.ID, st.State)
		if err != nil {
			return err
		}
		v.Trigger, v.ReturnsTo, v.ActiveTriggers, v.NextChange = why.Trigger, why.ReturnsTo, why.Active, why.Next
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// ownDevice returns the dial string of u's device that device names (letter case aside).
func ownDevice(u *presence.User, device string) (string, bool) {
	for _, d := range u.Devices {
		if strings.EqualFold(d.Dial, device) {
			return d.Dial, true
		}
	}
	return "", false
}

// reconcile puts the user's whole desired state back on the PBX: the one-call fix for the
// status's "does not match your profile" warning and for changes waiting for a call to end.
func (h *Handler) reconcile(w http.ResponseWriter, r *http.Request, c caller) error {
	res, err := h.engine.Enforce(r.Context(), pathUser(r), c.actor())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, switchView(res))
	return nil
}

// triggerBody is the body of POST /users/{user}/triggers/{name}.
type triggerBody struct {
	State   string `json:"state"`
	Profile string `json:"profile,omitempty"`
	// MaxDuration bounds how long a start holds the user if its end never comes ("2h");
	// empty means triggers.external_max_duration.
	MaxDuration string `json:"max_duration,omitempty"`
}

// externalTrigger starts or ends an external trigger (a calendar, a meeting tool).
func (h *Handler) externalTrigger(w http.ResponseWriter, r *http.Request, _ caller) error {
	var body triggerBody
	if err := h.decode(w, r, &body); err != nil {
		return err
	}
	name := r.PathValue("name")
	var problems []string
	if err := trigger.TriggerName(name); err != nil {
		problems = append(problems, "name: "+err.Error())
	}
	switch {
	case body.State != "start" && body.State != "end":
		problems = append(problems, fmt.Sprintf("state: %q is not start or end", body.State))
	case body.State == "start" && body.Profile == "":
		problems = append(problems, "profile: required to start a trigger")
	}
	var maxDuration time.Duration
	if body.MaxDuration != "" {
		d, err := time.ParseDuration(body.MaxDuration)
		switch {
		case body.State != "start":
			problems = append(problems, "max_duration: only with state start")
		case err != nil || d < time.Minute || d > trigger.MaxExternalDuration:
			problems = append(problems, fmt.Sprintf("max_duration: %q is not a duration from 1m to %v", body.MaxDuration, trigger.MaxExternalDuration))
		default:
			maxDuration = d
		}
	}
	if len(problems) > 0 {
		return &presence.ValidationError{Problems: problems}
	}
	if h.triggers == nil {
		return &apiError{status: http.StatusServiceUnavailable, msg: "external triggers need the trigger scheduler, which this API was built without"}
	}
	res, err := h.triggers.External(r.Context(), pathUser(r), name, body.State == "start", body.Profile, maxDuration)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// profileView is a profile with whether it is the user's own.
type profileView struct {
	*presence.Profile
	Personal bool `json:"personal"`
}

func viewOf(p *presence.Profile) profileView { return profileView{Profile: p, Personal: p.Personal()} }

// profileList is the answer of GET /users/{user}/profiles.
type profileList struct {
	Profiles []profileView `json:"profiles"`
}

func (h *Handler) listProfiles(w http.ResponseWriter, r *http.Request, _ caller) error {
	ps, err := h.engine.Profiles(r.Context(), pathUser(r))
	if err != nil {
		return err
	}
	out := profileList{Profiles: make([]profileView, 0, len(ps))}
	for _, p := range ps {
		out.Profiles = append(out.Profiles, viewOf(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// findProfile returns the user's profile pid, or ErrUnknownProfile.
func (h *Handler) findProfile(r *http.Request, pid string) (*presence.Profile, error) {
	ps, err := h.engine.Profiles(r.Context(), pathUser(r))
	if err != nil {
		return nil, err
	}
	if p := presence.FindProfile(ps, pid); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q", presence.ErrUnknownProfile, pid)
}

func (h *Handler) getProfile(w http.ResponseWriter, r *http.Request, _ caller) error {
	p, err := h.findProfile(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOf(p))
	return nil
}

// profileBody is the body of PUT /users/{user}/profiles/{id}: a profile as GET answers it,
// whose "personal" is accepted and ignored, so a client can send back what it read.
type profileBody struct {
	presence.Profile
	Personal *bool `json:"personal,omitempty"`
}

// putProfile creates (201) or replaces (200) a personal profile; the path names its id.
func (h *Handler) putProfile(w http.ResponseWriter, r *http.Request, _ caller) error {
	uid, pid := pathUser(r), r.PathValue("id")
	pp, err := h.profileBodyOf(w, r)
	if err != nil {
		return err
	}
	p := *pp
	old, err := h.findProfile(r, pid)
	if err != nil && !errors.Is(err, presence.ErrUnknownProfile) {
		return err // unknown user, unreadable state
	}
	if err := icon.Check(&p, nil); err != nil {
		// Every problem at once: the icon's and the engine's.
		return icon.Check(&p, h.engine.CheckProfile(r.Context(), uid, &p))
	}
	if err := h.engine.SaveProfile(r.Context(), uid, &p); err != nil {
		return err
	}
	status := http.StatusOK
	if old == nil {
		status = http.StatusCreated
		w.Header().Set("Location", Prefix+"/users/"+url.PathEscape(string(uid))+"/profiles/"+url.PathEscape(pid))
	}
	writeJSON(w, status, viewOf(&p))
	return nil
}

// profileBodyOf reads a profile body (PUT, and the preview of an edit) for the path's user
// and profile id.
func (h *Handler) profileBodyOf(w http.ResponseWriter, r *http.Request) (*presence.Profile, error) {
	uid, pid := pathUser(r), r.PathValue("id")
	var body profileBody
	if err := h.decode(w, r, &body); err != nil {
		return nil, err
	}
	p := body.Profile
	if p.ID != "" && p.ID != pid {
		return nil, invalid("id", fmt.Sprintf("%q differs from the path's %q (leave it out)", p.ID, pid))
	}
	if p.Owner != "" && p.Owner != uid {
		return nil, invalid("owner", fmt.Sprintf("%q differs from the path's %q (leave it out)", p.Owner, uid))
	}
	p.ID = pid
	return &p, nil
}

// previewProfile says what switching to a personal profile as the body gives it would do,
// storing nothing: the profile editor's preview of unsaved edits. The body is checked as PUT
// checks it (422 naming the fields); for this preview it replaces the stored profile of its id,
// or joins the others when there is none.
func (h *Handler) previewProfile(w http.ResponseWriter, r *http.Request, c caller) error {
	p, err := h.profileBodyOf(w, r)
	if err != nil {
		return err
	}
	uid := pathUser(r)
	if err := icon.Check(p, nil); err != nil {
		return icon.Check(p, h.engine.CheckProfile(r.Context(), uid, p))
	}
	res, err := h.engine.PreviewWith(r.Context(), presence.SwitchRequest{User: uid, Profile: p.ID,
		Source: presence.SourceAPI, Actor: c.actor()}, presence.PreviewOptions{Candidate: p})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, switchView(res))
	return nil
}

func (h *Handler) deleteProfile(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := h.engine.DeleteProfile(r.Context(), pathUser(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// presenceView is what colleagues see of a user; Since is left out for a user never switched.
type presenceView struct {
	presence.PresenceEntry
	Since time.Time `json:"since,omitzero"` // shadows PresenceEntry.Since
}

// presenceList is the answer of GET /presence.
type presenceList struct {
	Users []presenceView `json:"users"`
}

// everyone answers every user's presence. Any valid token may read it; a user whose active
// profile is private shows to colleagues only as the presence state and its neutral text,
// while the user themselves and the admin see everything (presence.Engine.Everyone).
func (h *Handler) everyone(w http.ResponseWriter, r *http.Request, c caller) error {
	opts := presence.EveryoneOptions{Admin: c.admin}
	if c.user != nil {
		opts.Viewer = c.user.ID
	}
	all, err := h.engine.Everyone(r.Context(), opts)
	if err != nil {
		return err
	}
	out := presenceList{Users: make([]presenceView, len(all))}
	for i, pe := range all {
		out.Users[i] = presenceView{PresenceEntry: pe, Since: pe.Since}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// journalView is the answer of GET /users/{user}/journal: the entries, newest first, and the
// entries that could not be read (each naming its Redis key and entry ID).
type journalView struct {
	Entries    []presence.JournalEntry `json:"entries"`
	Unreadable []string                `json:"unreadable,omitempty"`
}

func (h *Handler) journal(w http.ResponseWriter, r *http.Request, _ caller) error {
	limit := int64(defaultJournalLimit)
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > maxJournalLimit {
			return &apiError{status: http.StatusBadRequest, field: "limit",
				msg: fmt.Sprintf("limit: %q is not a number from 1 to %d", s, maxJournalLimit)}
		}
		limit = n
	}
	entries, err := h.engine.Journal(r.Context(), pathUser(r), limit)
	out := journalView{Entries: entries}
	if err != nil {
		// One unreadable entry must not hide the others: answer what could be read and name
		// what could not. Anything else is an error.
		corrupt := corruptErrors(err)
		if corrupt == nil {
			return err
		}
		h.log.Warn("journal entries unreadable", "user", pathUser(r), "err", err)
		for _, c := range corrupt {
			out.Unreadable = append(out.Unreadable, c.Error())
		}
	}
	out.Entries = orEmpty(out.Entries)
	for i := range out.Entries {
		out.Entries[i].Outcomes = orEmpty(out.Entries[i].Outcomes)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// corruptErrors returns the CorruptErrors err is made of, or nil when it holds anything else.
func corruptErrors(err error) []*presence.CorruptError {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok { // errors.Join's shape
		errs = j.Unwrap()
	}
	var out []*presence.CorruptError
	for _, e := range errs {
		var c *presence.CorruptError
		if !errors.As(e, &c) {
			return nil
		}
		out = append(out, c)
	}
	return out
}

func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(h.document)
	return nil
}

// pathUser is the user the path names.
func pathUser(r *http.Request) presence.UserID { return presence.UserID(r.PathValue("user")) }
