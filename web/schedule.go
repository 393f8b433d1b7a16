package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// scheduleDay is one day of the week view.
type scheduleDay struct {
	Date  time.Time
	Items []trigger.Occurrence
}

// scheduleData is the schedule page.
type scheduleData struct {
	// TimeZone is the zone the user's own entries run in (and the page shows times in):
	// theirs when OwnTimeZone, else InheritedTimeZone, the configuration's zone, which the
	// inherited entries run in.
	TimeZone          string
	OwnTimeZone       bool
	InheritedTimeZone string
	// Zones are the common zones the time zone field suggests; ZoneValue and ZoneError are a
	// refused zone and why.
	Zones     []string
	ZoneValue string
	ZoneError string
	Inherited []presence.Schedule
	Personal  []trigger.PersonalEntry
	Week      []scheduleDay
	Profiles  []*presence.Profile
	Names     map[string]string
	Colours   map[string]string
	Form      trigger.PersonalEntry // the entry being added, kept when refused
	Kind      string                // "at" or "range"
	Problems  []string
	Days      []string
}

// Name is a profile's name, or its id.
func (d scheduleData) Name(id string) string {
	if n, ok := d.Names[id]; ok {
		return n
	}
	return id
}

// Colour is a profile's colour.
func (d scheduleData) Colour(id string) string { return d.Colours[id] }

// HasDay reports whether the form's entry runs on day d.
func (d scheduleData) HasDay(day string) bool { return slices.Contains(d.Form.Days, day) }

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func (h *Handler) schedulePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	msg := ""
	switch r.URL.Query().Get("done") {
	case "saved":
		msg = "Schedule entry saved."
	case "deleted":
		msg = "Schedule entry deleted."
	case "zone":
		msg = "Time zone saved."
	}
	h.showSchedule(w, r, v, http.StatusOK, msg, scheduleData{Kind: "at"})
}

func (h *Handler) showSchedule(w http.ResponseWriter, r *http.Request, v *viewer, code int, msg string, d scheduleData) {
	s := h.opts.Triggers
	if s == nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", v, page{Title: "Unavailable", Message: "Schedules need the trigger scheduler."})
		return
	}
	ctx := r.Context()
	id := v.user.ID
	var err error
	if d.Personal, err = s.Personal(ctx, id); err != nil {
		h.fail(w, r, err)
		return
	}
	if d.Profiles, err = h.engine.Profiles(ctx, id); err != nil {
		h.fail(w, r, err)
		return
	}
	d.Names, d.Colours = map[string]string{}, map[string]string{}
	for _, p := range d.Profiles {
		d.Names[p.ID], d.Colours[p.ID] = p.Name, p.Colour
	}
	loc, own, err := s.TimeZone(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.TimeZone, d.OwnTimeZone, d.InheritedTimeZone = loc.String(), own, s.Location(id).String()
	d.Inherited, d.Days, d.Zones = s.Inherited(id), weekdays, commonZones
	if d.ZoneValue == "" {
		d.ZoneValue = d.TimeZone
	}
	now := h.now().In(loc)
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	occ, err := s.Week(ctx, id, now)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for i := range 7 {
		day := scheduleDay{Date: start.AddDate(0, 0, i)}
		next := start.AddDate(0, 0, i+1)
		for _, o := range occ {
			if !o.Start.Before(day.Date) && o.Start.Before(next) {
				o.Start, o.End = o.Start.In(loc), o.End.In(loc)
				day.Items = append(day.Items, o)
			}
		}
		d.Week = append(d.Week, day)
	}
	h.render(w, r, code, "schedule", v, page{Title: "My schedule", Nav: "schedule", Message: msg, Data: d})
}

// saveSchedule adds or replaces one of the user's own entries.
func (h *Handler) saveSchedule(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	e := trigger.PersonalEntry{Schedule: presence.Schedule{Name: strings.TrimSpace(f.Get("name")),
		Profile: f.Get("profile"), Days: f["days"], Holidays: f.Get("holidays"), Disabled: f.Get("disabled") == "on"}}
	kind := f.Get("kind")
	if kind == "range" {
		e.From, e.To = f.Get("from"), f.Get("to")
	} else {
		kind, e.At = "at", f.Get("at")
	}
	if len(e.Days) == 7 {
		e.Days = nil // every day
	}
	h.storeSchedule(w, r, v, e, kind)
}

func (h *Handler) storeSchedule(w http.ResponseWriter, r *http.Request, v *viewer, e trigger.PersonalEntry, kind string) {
	if h.opts.Triggers == nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", v, page{Title: "Unavailable", Message: "Schedules need the trigger scheduler."})
		return
	}
	err := h.opts.Triggers.SavePersonal(r.Context(), v.user.ID, e)
	var ve *presence.ValidationError
	if errors.As(err, &ve) {
		h.showSchedule(w, r, v, http.StatusUnprocessableEntity, "", scheduleData{Form: e, Kind: kind, Problems: ve.Problems})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/schedule?done=saved", http.StatusSeeOther)
}

// toggleSchedule disables or enables one of the user's entries.
func (h *Handler) toggleSchedule(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.opts.Triggers == nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", v, page{Title: "Unavailable", Message: "Schedules need the trigger scheduler."})
		return
	}
	own, err := h.opts.Triggers.Personal(r.Context(), v.user.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(own, func(e trigger.PersonalEntry) bool { return e.Name == r.PathValue("name") })
	if i < 0 {
		h.render(w, r, http.StatusNotFound, "error", v, page{Title: "Not found", Message: "You have no such schedule entry."})
		return
	}
	e := own[i]
	e.Disabled = !e.Disabled
	kind := "at"
	if e.From != "" {
		kind = "range"
	}
	h.storeSchedule(w, r, v, e, kind)
}

func (h *Handler) deleteSchedule(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.opts.Triggers == nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", v, page{Title: "Unavailable", Message: "Schedules need the trigger scheduler."})
		return
	}
	if _, err := h.opts.Triggers.DeletePersonal(r.Context(), v.user.ID, r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/schedule?done=deleted", http.StatusSeeOther)
}

// commonZones are the time zones the schedule page suggests; any IANA name is accepted.
var commonZones = []string{
	"UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
	"Europe/Rome", "Europe/Amsterdam", "Europe/Brussels", "Europe/Zurich", "Europe/Vienna", "Europe/Stockholm",
	"Europe/Warsaw", "Europe/Prague", "Europe/Helsinki", "Europe/Athens", "Europe/Istanbul", "Europe/Moscow",
	"Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo",
	"Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo", "America/New_York", "America/Chicago",
	"America/Denver", "America/Los_Angeles", "America/Toronto", "America/Mexico_City",
}

// saveTimeZone sets the time zone the user's own entries run in; empty returns them to the
// configuration's.
func (h *Handler) saveTimeZone(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.opts.Triggers == nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", v, page{Title: "Unavailable", Message: "Schedules need the trigger scheduler."})
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("time_zone"))
	err := h.opts.Triggers.SetTimeZone(r.Context(), v.user.ID, name)
	var ve *presence.ValidationError
	if errors.As(err, &ve) {
		_, msg, _ := strings.Cut(ve.Problems[0], ": ")
		h.showSchedule(w, r, v, http.StatusUnprocessableEntity, "", scheduleData{Kind: "at", ZoneValue: name, ZoneError: msg})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/schedule?done=zone", http.StatusSeeOther)
}
