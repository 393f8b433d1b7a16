package api

import (
	"net/http"

	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/presence"
)

var noCalendars = &apiError{status: http.StatusServiceUnavailable, msg: "calendars need the calendar connector, which this API was built without"}

// calendarStatus answers GET /users/{user}/calendar: the plan of the user's calendar, whether
// it is stale (the last poll failed), and the events holding the user now.
func (h *Handler) calendarStatus(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.calendars == nil {
		return noCalendars
	}
	id := pathUser(r)
	if _, ok := h.engine.Catalog().User(id); !ok {
		return presence.ErrUnknownUser
	}
	st, ok, err := h.calendars.Status(r.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return &apiError{status: http.StatusNotFound, msg: string(id) + " has no calendar (users[].calendar)"}
	}
	if st.Items == nil {
		st.Items = []calendar.Item{}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
