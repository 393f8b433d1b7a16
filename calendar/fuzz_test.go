package calendar

import (
	"testing"
	"time"
)

// FuzzExpand: whatever a calendar holds (an invitation from anyone lands in it), reading and
// expanding it returns instances or problems, never panics, and every instance lies in the
// window with its end not before its start.
func FuzzExpand(f *testing.F) {
	f.Add("BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe/Berlin:20270301T090000\r\nDTEND;TZID=Europe/Berlin:20270301T100000\r\n" +
		"RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20270601T000000Z\r\nEXDATE;TZID=Europe/Berlin:20270303T090000\r\nSUMMARY:m: x\r\nEND:VEVENT\r\n")
	f.Add("BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID;VALUE=DATE:20270302\r\nDTSTART;VALUE=DATE:20270302\r\nDURATION:P2D\r\nEND:VEVENT\r\n")
	f.Add("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270301T090000Z\r\nRRULE:FREQ=MONTHLY;BYSETPOS=-1;BYDAY=FR;COUNT=5\r\nRDATE:20270301T120000Z,20270302T120000Z\r\nEND:VEVENT\r\n")
	f.Add("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270301T090000Z\r\nRRULE:FREQ=YEARLY;BYWEEKNO=53;BYYEARDAY=-366;INTERVAL=0\r\nEND:VEVENT\r\n")
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(14 * 24 * time.Hour)
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, vevents string) {
		cals, err := decodeAll([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + vevents + "END:VCALENDAR\r\n"))
		if err != nil {
			return
		}
		occs, _ := Expand(cals, loc, from, to)
		for _, o := range occs {
			if !o.Start.Before(to) || !o.End.After(from) && !o.End.Equal(o.Start) || o.End.Before(o.Start) {
				t.Fatalf("instance %s %v–%v outside [%v, %v) or ending before its start", o.Summary, o.Start, o.End, from, to)
			}
			_ = o.Key()
		}
	})
}
