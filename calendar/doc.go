// Package calendar switches users by their calendars (CalDAV or an iCalendar feed): events
// that rules map to profiles ("m: Budget review" → meeting) hold the user in that profile
// from their start to their end, through package trigger's precedence.
//
// Expand lists the instances of events in a window (RRULE, RDATE, EXDATE, RECURRENCE-ID
// overrides and cancellations, time zones); Match applies the rules; Connector polls each
// user's calendar (Fetcher: sync-collection where the server supports it), keeps the plan in
// Redis, and holds and releases the users through trigger.Scheduler's Hold and Release (the
// extension point every connector uses: an activation "<connector>:<key>" with a label that
// the state and the journal show).
//
// Libraries: go-webdav's CalDAV client (calendar-query, calendar-multiget; the sync-collection
// REPORT is sent by hand, its client has none for CalDAV), go-ical's parser, and rrule-go for
// RRULE. Expand builds the recurrence set itself: go-ical's RecurrenceSet reads the EXDATE
// lines where RDATEs belong (RDATE is ignored), one value per line, and knows no
// RECURRENCE-ID; golang-ical does not expand recurrences at all.
package calendar
