package presence

import "time"

// CalendarSource is a user's calendar (package calendar): a CalDAV calendar collection or an
// iCalendar (ICS) feed, polled for events that switch the user by rules. Secrets come from
// files only: the password or token file is read at every poll, so it can be rotated.
type CalendarSource struct {
	// Type is "caldav" (a calendar collection URL) or "ics" (a feed URL).
	Type string `json:"type" mapstructure:"type"`
	// URL is the calendar collection or feed; URLFile names a file holding it instead (a
	// published feed's address is itself a secret). Exactly one of the two.
	URL     string `json:"-" mapstructure:"url"`
	URLFile string `json:"-" mapstructure:"url_file"`
	// Username with PasswordFile authenticates with HTTP Basic; TokenFile instead sends
	// "Authorization: Bearer <token>". Both optional.
	Username     string `json:"-" mapstructure:"username"`
	PasswordFile string `json:"-" mapstructure:"password_file"`
	TokenFile    string `json:"-" mapstructure:"token_file"`
	// PollInterval is how often the calendar is read; zero means the system-wide default.
	PollInterval time.Duration `json:"poll_interval,omitempty" mapstructure:"poll_interval"`
	// Rules map events to profiles; empty means the system-wide rules.
	Rules []CalendarRule `json:"rules,omitempty" mapstructure:"rules"`
}

// CalendarRule maps calendar events to a profile. Every condition set must hold (at least
// one must be set); among the rules matching an event the lowest Priority wins, then the
// first listed.
type CalendarRule struct {
	// TitlePrefix matches events whose title starts with it (case-insensitive), e.g. "m:".
	TitlePrefix string `json:"title_prefix,omitempty" mapstructure:"title_prefix"`
	// TitleContains matches events whose title contains it (case-insensitive).
	TitleContains string `json:"title_contains,omitempty" mapstructure:"title_contains"`
	// ShowAs matches the event's free/busy status: busy, free, tentative or oof (out of office).
	ShowAs string `json:"show_as,omitempty" mapstructure:"show_as"`
	// AllDay, when set, matches only all-day events (true) or only timed ones (false).
	AllDay *bool `json:"all_day,omitempty" mapstructure:"all_day"`
	// Profile is where a matching event puts the user while it lasts.
	Profile string `json:"profile" mapstructure:"profile"`
	// Priority orders the rules (lower first); it does not change the profile's own priority
	// among triggers active at once.
	Priority int `json:"priority,omitempty" mapstructure:"priority"`
}
