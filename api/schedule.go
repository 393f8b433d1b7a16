package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// A user's schedule (package trigger, personal.go): the entries inherited from the
// configuration (read-only), the user's own, and the coming week.

// scheduleView is the answer of GET /users/{user}/schedule.
type scheduleView struct {
	// TimeZone is the zone the user's own entries run in: theirs (OwnTimeZone), else
	// InheritedTimeZone.
	TimeZone    string `json:"time_zone"`
	OwnTimeZone bool   `json:"own_time_zone"`
	// InheritedTimeZone is the configuration's zone, which the inherited entries run in.
	InheritedTimeZone string                  `json:"inherited_time_zone"`
	Inherited         []presence.Schedule     `json:"inherited"`
	Personal          []trigger.PersonalEntry `json:"personal"`
	Week              []occurrenceView        `json:"week"`
}

// occurrenceView is one occurrence of the coming week.
type occurrenceView struct {
	Entry   string     `json:"entry"`
	Profile string     `json:"profile"`
	Start   time.Time  `json:"start"`
	End     *time.Time `json:"end,omitempty"`
}

// scheduleBody is the body of PUT /users/{user}/schedule/{name}: an entry without its name
// (the path names it).
type scheduleBody struct {
	Days     []string `json:"days,omitempty"`
	At       string   `json:"at,omitempty"`
	From     string   `json:"from,omitempty"`
	To       string   `json:"to,omitempty"`
	Profile  string   `json:"profile"`
	Holidays string   `json:"holidays,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
}

var noScheduler = &apiError{status: http.StatusServiceUnavailable, msg: "schedules need the trigger scheduler, which this API was built without"}

func (h *Handler) getSchedule(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.triggers == nil {
		return noScheduler
	}
	id := pathUser(r)
	if _, ok := h.engine.Catalog().User(id); !ok {
		return presence.ErrUnknownUser
	}
	v, err := scheduleOf(r, h.triggers, id, h.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// scheduleOf is a user's schedule as the API answers it.
func scheduleOf(r *http.Request, s *trigger.Scheduler, id presence.UserID, now time.Time) (*scheduleView, error) {
	own, err := s.Personal(r.Context(), id)
	if err != nil {
		return nil, err
	}
	occ, err := s.Week(r.Context(), id, now)
	if err != nil {
		return nil, err
	}
	loc, ownZone, err := s.TimeZone(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := &scheduleView{TimeZone: loc.String(), OwnTimeZone: ownZone, InheritedTimeZone: s.Location(id).String(),
		Inherited: orEmpty(s.Inherited(id)), Personal: orEmpty(own), Week: []occurrenceView{}}
	for _, o := range occ {
		ov := occurrenceView{Entry: o.Entry.Name, Profile: o.Entry.Profile, Start: o.Start}
		if !o.End.IsZero() {
			end := o.End
			ov.End = &end
		}
		v.Week = append(v.Week, ov)
	}
	return v, nil
}

// scheduleSettings is the body of PATCH /users/{user}/schedule.
type scheduleSettings struct {
	// TimeZone is the IANA zone the user's own entries run in; "" returns them to the
	// configuration's. Absent leaves it as it is.
	TimeZone *string `json:"time_zone"`
}

// patchSchedule changes the settings of the user's schedule (their time zone) and answers the
// schedule as GET does.
func (h *Handler) patchSchedule(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.triggers == nil {
		return noScheduler
	}
	var body scheduleSettings
	if err := h.decode(w, r, &body); err != nil {
		return err
	}
	id := pathUser(r)
	if _, ok := h.engine.Catalog().User(id); !ok {
		return fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if body.TimeZone != nil {
		if err := h.triggers.SetTimeZone(r.Context(), id, *body.TimeZone); err != nil {
			return err
		}
	}
	v, err := scheduleOf(r, h.triggers, id, h.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) putSchedule(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.triggers == nil {
		return noScheduler
	}
	var body scheduleBody
	if err := h.decode(w, r, &body); err != nil {
		return err
	}
	e := trigger.PersonalEntry{Schedule: presence.Schedule{Name: r.PathValue("name"), Days: body.Days, At: body.At,
		From: body.From, To: body.To, Profile: body.Profile, Holidays: body.Holidays, Disabled: body.Disabled}}
	if err := h.triggers.SavePersonal(r.Context(), pathUser(r), e); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

func (h *Handler) deleteSchedule(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.triggers == nil {
		return noScheduler
	}
	ok, err := h.triggers.DeletePersonal(r.Context(), pathUser(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	if !ok {
		return &apiError{status: http.StatusNotFound, msg: "no schedule entry " + r.PathValue("name")}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
