package presence

import "time"

// Source is what asked for a switch.
type Source string

// The sources of a switch (README.md, "Triggers").
const (
	SourceAPI         Source = "api"          // REST API, a client, a script
	SourceFeatureCode Source = "feature_code" // *55<n> dialed on a phone
	SourceSchedule    Source = "schedule"     // a time trigger
	SourceExternal    Source = "external"     // a calendar or meeting tool
	SourceExpiry      Source = "expiry"       // a timed profile ran out
	SourceUnanswered  Source = "unanswered"   // queue calls offered to the user went unanswered
	SourcePhone       Source = "phone"        // the DND key of the user's phone (the drift policy switch)
	SourceSystem      Source = "system"       // presenced itself (first start, repair)
)

// Manual reports whether a person asked for the switch just now (the API, a feature code, the
// DND key of their phone): such a switch is made at once, even during a call; the others
// (schedules, triggers, expiry, presenced itself) leave a user's queue state alone until their
// call ends.
func (s Source) Manual() bool { return s == SourceAPI || s == SourceFeatureCode || s == SourcePhone }

// UserState is what presenced keeps in Redis for one user.
type UserState struct {
	Profile  string    `json:"profile"`
	Previous string    `json:"previous,omitempty"`
	Since    time.Time `json:"since"`
	Source   Source    `json:"source"`
	Actor    string    `json:"actor,omitempty"` // who switched: a user ID, "admin", a trigger name
	Info     string    `json:"info,omitempty"`
	Sticky   bool      `json:"sticky,omitempty"`
	// Until is when a timed profile ends or a schedule's range returns; nil when open-ended.
	Until *time.Time `json:"until,omitempty"`
	// Steps are the action chains the user's switches applied, compacted (Step): the desired
	// state is their fold, compiled from the profiles as they are now.
	Steps []Step `json:"steps"`
	// Version counts the writes; a write whose version is stale is refused (optimistic locking).
	Version int64 `json:"version"`
	// Adopted is what the desired state accepted from the PBX under the adopt drift policy,
	// until the next switch. It is stored beside the state (StateStore.SaveAdopted).
	Adopted *Target `json:"adopted,omitempty"`
	// Record is what the engine's last look at the user's PBX state found; it is stored beside
	// the state (StateStore.SaveRecord), not in it.
	Record *Record `json:"-"`
}

// SwitchEvent is one switch as the journal and webhooks report it.
type SwitchEvent struct {
	User      UserID    `json:"user"`
	Extension string    `json:"extension"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to"`
	Info      string    `json:"info,omitempty"`
	Source    Source    `json:"source"`
	Actor     string    `json:"actor,omitempty"`
	At        time.Time `json:"at"`
}

// JournalKind says what made a journal entry.
type JournalKind string

// The kinds of journal entries.
const (
	JournalSwitch JournalKind = "switch" // a pass that applied a switch (or a switch superseded before it was applied)
	JournalRepair JournalKind = "repair" // a pass that found drift and dealt with it as the policies say
	// JournalReconcile is an enforced pass (Engine.Enforce): the whole desired state put back
	// whatever the policies say, without waiting for a call to end.
	JournalReconcile JournalKind = "reconcile"
	JournalReload    JournalKind = "reload" // a pass that applied a configuration reload (reloadActor)
	// JournalRemoved is the last entry of a user removed from the configuration, written
	// before their keys were archived.
	JournalRemoved JournalKind = "removed"
)

// JournalEntry is a switch or repair with the outcome of every operation.
type JournalEntry struct {
	ID string `json:"id"`
	SwitchEvent
	Kind     JournalKind `json:"kind"`
	Outcomes []Outcome   `json:"outcomes"`
	InSync   bool        `json:"in_sync"`
	// SupersededBy is, for a switch a later one replaced before it was applied, the state
	// version of the switch applied instead; the superseded switch made no operations.
	SupersededBy int64 `json:"superseded_by,omitempty"`
}
