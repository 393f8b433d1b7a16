package web

import (
	"context"
	"fmt"

	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/presence"
)

// Calendars is what the status page reads of the users' calendars (*calendar.Connector
// implements it): the plan, whether it is stale, and the events holding the user now.
type Calendars interface {
	Status(ctx context.Context, id presence.UserID) (*calendar.Status, bool, error)
}

// calendarLine is the status page's line about the user's calendar, in words: the event
// holding them now or the next one that switches them, or that the calendar is unreachable
// and since when (its last plan stays in force). ok is false for a user without a calendar.
func (h *Handler) calendarLine(ctx context.Context, u *presence.User) (line string, stale, ok bool) {
	if h.opts.Calendars == nil {
		return "", false, false
	}
	st, ok, err := h.opts.Calendars.Status(ctx, u.ID)
	if !ok {
		return "", false, false
	}
	if err != nil {
		h.log.Warn("calendar status not read for the status page", "user", u.ID, "err", err)
		return "its status cannot be read just now", true, true
	}
	now := h.now()
	var parts []string
	if st.Stale {
		if st.Polled.IsZero() {
			parts = append(parts, "unreachable, never read yet ("+st.Error+")")
		} else {
			parts = append(parts, fmt.Sprintf("unreachable since %s (%s); its last plan stays in force", h.when(st.Polled), st.Error))
		}
	}
	if len(st.Held) > 0 {
		parts = append(parts, "now "+h.eventWords(st.Held[0]))
	}
	for _, it := range st.Items {
		if it.Start.After(now) {
			parts = append(parts, "next event "+h.eventWords(it))
			break
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no events ahead that switch you")
	}
	line = parts[0]
	for _, p := range parts[1:] {
		line += "; " + p
	}
	return line, st.Stale, true
}

// eventWords names an event as people read it: "'m: Budget review' 14:00–15:00", "… tomorrow
// 09:00–10:30", "'Out of office' all day Thu 4 Mar".
func (h *Handler) eventWords(it calendar.Item) string {
	loc := h.opts.Location
	start, end := it.Start.In(loc), it.End.In(loc)
	if it.AllDay {
		return fmt.Sprintf("'%s' all day %s", it.Summary, start.Format("Mon 2 Jan"))
	}
	span := h.when(it.Start) + "–" + end.Format("15:04")
	if y1, d1 := start.Year(), start.YearDay(); y1 != end.Year() || d1 != end.YearDay() {
		span = h.when(it.Start) + "–" + h.when(it.End)
	}
	return fmt.Sprintf("'%s' %s", it.Summary, span)
}
