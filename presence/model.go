package presence

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// UserID identifies a user in the configuration, the API and Redis.
type UserID string

// Family is the kind of a device; follow-me rings devices by family.
type Family string

// The device families.
const (
	FamilyDesk      Family = "desk"
	FamilySoftphone Family = "softphone"
	FamilyMobile    Family = "mobile"
	FamilyDECT      Family = "dect"
	FamilyExternal  Family = "external"
)

// Families lists every device family, in the order a ring list uses them.
func Families() []Family {
	return []Family{FamilyDesk, FamilySoftphone, FamilyDECT, FamilyMobile, FamilyExternal}
}

// DefaultRingFamilies are the families of a user's devices that ring until a profile says
// otherwise (followme, mobile): the phones at the desk. A user who has none of them has all
// their devices ring (DefaultRingList).
func DefaultRingFamilies() []Family {
	return []Family{FamilyDesk, FamilySoftphone, FamilyDECT}
}

// DefaultRingList lists the dial strings of u's devices that ring until a profile says
// otherwise: those of DefaultRingFamilies, in the user's device order; all of them when the
// user has none of those.
func (u *User) DefaultRingList() []string {
	if out := u.DevicesOf(DefaultRingFamilies()); len(out) > 0 {
		return out
	}
	out := make([]string, len(u.Devices))
	for i, d := range u.Devices {
		out[i] = d.Dial
	}
	return out
}

// RingSteps groups u's devices by families, in the order of families (each family once),
// within a family in the user's order; a family the user has no device of is left out, and
// with it its entry of times (when times has one per family). It returns the steps and the
// times kept.
func (u *User) RingSteps(families []Family, times []int) ([][]string, []int) {
	var steps [][]string
	var kept []int
	seen := map[Family]bool{}
	for i, f := range families {
		if seen[f] {
			continue
		}
		seen[f] = true
		devs := u.DevicesOf([]Family{f})
		if len(devs) == 0 {
			continue
		}
		steps = append(steps, devs)
		if len(times) == len(families) {
			kept = append(kept, times[i])
		}
	}
	return steps, kept
}

// Valid reports whether f is a known family.
func (f Family) Valid() bool { return slices.Contains(Families(), f) }

// Device is one of a user's phones: a dial string (PJSIP/1001, PJSIP/1001-mobile, or an external
// number through a trunk, e.g. PJSIP/+4930123@trunk) and its family.
type Device struct {
	Dial   string `json:"dial" mapstructure:"dial"`
	Family Family `json:"family" mapstructure:"family"`
}

// QueueMembership is a queue a user may join, with the penalty they join it with.
type QueueMembership struct {
	Name    string `json:"name" mapstructure:"name"`
	Penalty int    `json:"penalty" mapstructure:"penalty"`
}

// User is a person whose presence presenced manages.
type User struct {
	ID        UserID            `json:"id" mapstructure:"id"`
	Name      string            `json:"name" mapstructure:"name"`
	Extension string            `json:"extension" mapstructure:"extension"`
	Devices   []Device          `json:"devices" mapstructure:"devices"`
	Queues    []QueueMembership `json:"queues" mapstructure:"queues"`
	// PIN protects feature codes dialed from a device that is not the user's.
	PIN string `json:"-" mapstructure:"pin"`
	// PINHash is an argon2id or bcrypt hash of the PIN (package internal/secret), instead of
	// PIN; PINFile names a file holding the PIN, which the configuration loader reads into PIN.
	// At most one of PIN, PINHash and PINFile.
	PINHash string `json:"-" mapstructure:"pin_hash"`
	PINFile string `json:"-" mapstructure:"pin_file"`
	// TimeZone is an IANA zone name used by schedules; empty means the daemon's zone.
	TimeZone string `json:"time_zone,omitempty" mapstructure:"time_zone"`
	// Token authenticates the user on the REST API (Authorization: Bearer <token>, or Basic
	// with the user id and the token).
	Token string `json:"-" mapstructure:"token"`
	// TokenHash is an argon2id or bcrypt hash of the token, instead of Token: the user
	// authenticates with Basic auth (user id or extension, and the token). TokenFile names a
	// file holding the token, which the configuration loader reads into Token. At most one of
	// Token, TokenHash and TokenFile.
	TokenHash string `json:"-" mapstructure:"token_hash"`
	TokenFile string `json:"-" mapstructure:"token_file"`
	// PasswordHash is an argon2id or bcrypt hash of the password the user signs in to the web
	// app with (package account); a password the user sets later is stored hashed in Redis
	// and replaces it. Empty: the user has no password until an admin's set-password link.
	PasswordHash string `json:"-" mapstructure:"password_hash"`
	// Admin lets the user, signed in to the web app, see and act on every user.
	Admin bool `json:"admin,omitempty" mapstructure:"admin"`
	// DefaultProfile is the user's home profile (Catalog.HomeProfile): where dialing the
	// active profile's number again returns to; empty means the configuration's default.
	DefaultProfile string `json:"default_profile,omitempty" mapstructure:"default_profile"`
	// CallerIDs are the numbers (besides the extension) the user may present as caller ID in
	// a personal profile; the admin assigns them.
	CallerIDs []string `json:"caller_ids,omitempty" mapstructure:"caller_ids"`
	// Schedules are the user's own time triggers (package trigger); empty means the
	// system-wide ones.
	Schedules []Schedule `json:"schedules,omitempty" mapstructure:"schedules"`
	// Calendar is the user's calendar source (package calendar); nil for none.
	Calendar *CalendarSource `json:"-" mapstructure:"calendar"`
	// DNDProfile is the system-wide profile the DND key of the user's phone switches to under
	// the drift policy switch (dndkey.go); empty means the system-wide one (dnd_key.profile).
	DNDProfile string `json:"dnd_profile,omitempty" mapstructure:"dnd_profile"`
}

// Schedule is a time trigger: at a time on chosen weekdays, or during a range (From to To)
// that returns at its end, the user switches to Profile. Times are "HH:MM" in the user's
// time zone; days are mon…sun (empty means every day). Holidays is "" (the entry does not run
// on holidays), "only" (it runs only on holidays, replacing the others) or "also".
type Schedule struct {
	Name     string   `json:"name" mapstructure:"name"`
	Days     []string `json:"days,omitempty" mapstructure:"days"`
	At       string   `json:"at,omitempty" mapstructure:"at"`
	From     string   `json:"from,omitempty" mapstructure:"from"`
	To       string   `json:"to,omitempty" mapstructure:"to"`
	Profile  string   `json:"profile" mapstructure:"profile"`
	Holidays string   `json:"holidays,omitempty" mapstructure:"holidays"`
	// Disabled keeps the entry without firing it: in the configuration as in a user's own
	// schedule.
	Disabled bool `json:"disabled,omitempty" mapstructure:"disabled"`
}

// DisplayName is the user's name, or the ID when no name is configured.
func (u *User) DisplayName() string {
	if u.Name != "" {
		return u.Name
	}
	return string(u.ID)
}

// Queue returns the user's membership of queue q.
func (u *User) Queue(q string) (QueueMembership, bool) {
	for _, m := range u.Queues {
		if m.Name == q {
			return m, true
		}
	}
	return QueueMembership{}, false
}

// DevicesOf lists the dial strings of the user's devices of the given families, in the
// user's device order.
func (u *User) DevicesOf(families []Family) []string {
	var out []string
	for _, d := range u.Devices {
		if slices.Contains(families, d.Family) {
			out = append(out, d.Dial)
		}
	}
	return out
}

// Visibility says who sees a profile's name and icon.
type Visibility string

// The visibilities.
const (
	VisibilityPublic  Visibility = "public"  // colleagues see the profile name
	VisibilityPrivate Visibility = "private" // colleagues see only the presence state
)

// Profile is a presence profile: what colleagues see and what the PBX does while it is active.
type Profile struct {
	ID         string     `json:"id" mapstructure:"id"`
	Name       string     `json:"name" mapstructure:"name"`
	Colour     string     `json:"colour,omitempty" mapstructure:"colour"`
	Icon       string     `json:"icon,omitempty" mapstructure:"icon"`
	Visibility Visibility `json:"visibility,omitempty" mapstructure:"visibility"`
	// Activation is the DTMF number that activates the profile (*55<n>); empty means none.
	Activation string `json:"activation,omitempty" mapstructure:"activation"`
	// Priority decides among automatic triggers active at once: lower wins.
	Priority int `json:"priority,omitempty" mapstructure:"priority"`
	// Sticky profiles are never replaced by schedules or external triggers.
	Sticky bool `json:"sticky,omitempty" mapstructure:"sticky"`
	// Presence is the presence state shown while the profile is active (available, away, dnd,
	// xa, chat, unavailable); empty leaves the presence state alone.
	Presence string   `json:"presence,omitempty" mapstructure:"presence"`
	OnEnter  []Action `json:"on_enter,omitempty" mapstructure:"on_enter"`
	OnExit   []Action `json:"on_exit,omitempty" mapstructure:"on_exit"`
	// Owner is the user a personal profile belongs to; empty for system-wide profiles.
	Owner UserID `json:"owner,omitempty" mapstructure:"-"`
}

// Personal reports whether the profile is a user's own rather than system-wide.
func (p *Profile) Personal() bool { return p.Owner != "" }

// ActionKind names what an action does.
type ActionKind string

// The action kinds (README.md, "Actions"). Each lands in Asterisk as Compile describes.
const (
	ActionQueueLogin   ActionKind = "queue_login"   // join queues (with the user's penalty)
	ActionQueueLogout  ActionKind = "queue_logout"  // leave queues
	ActionQueuePause   ActionKind = "queue_pause"   // pause in queues, with a reason
	ActionQueueUnpause ActionKind = "queue_unpause" // unpause in queues
	ActionDND          ActionKind = "dnd"           // do not disturb on (default) or off
	ActionFollowMe     ActionKind = "followme"      // which device families ring, in which order, how long
	ActionMobile       ActionKind = "mobile"        // mobile devices ring (default) or not
	ActionForward      ActionKind = "forward"       // call forward (unconditional, busy, no_answer) set or unset
	ActionNoAnswer     ActionKind = "no_answer"     // unanswered calls go to voicemail or a number
	ActionCallerID     ActionKind = "caller_id"     // caller ID for outgoing calls
	ActionLocation     ActionKind = "location"      // bind the user to a hot-desk device
	ActionPresence     ActionKind = "presence"      // presence state and message
	ActionLamp         ActionKind = "lamp"          // a BLF lamp (Custom: device state)
	ActionVariable     ActionKind = "variable"      // a dialplan variable: astdb key or global
	ActionWebhook      ActionKind = "webhook"       // an HTTP POST with the switch as JSON
)

// ActionKinds lists every action kind.
func ActionKinds() []ActionKind {
	return []ActionKind{ActionQueueLogin, ActionQueueLogout, ActionQueuePause, ActionQueueUnpause,
		ActionDND, ActionFollowMe, ActionMobile, ActionForward, ActionNoAnswer, ActionCallerID, ActionLocation,
		ActionPresence, ActionLamp, ActionVariable, ActionWebhook}
}

// ForwardType is a kind of call forwarding.
type ForwardType string

// The forwarding types.
const (
	ForwardUnconditional ForwardType = "unconditional"
	ForwardBusy          ForwardType = "busy"
	ForwardNoAnswer      ForwardType = "no_answer"
)

// ForwardTypes lists the forwarding types.
func ForwardTypes() []ForwardType {
	return []ForwardType{ForwardUnconditional, ForwardBusy, ForwardNoAnswer}
}

// RingOrder says whether a ring list rings its devices together or one after the other.
type RingOrder string

// The ring orders.
const (
	RingSimultaneous RingOrder = "simultaneous"
	RingSequential   RingOrder = "sequential"
)

// QueueSelector picks queues: "all" of the user's queues, or named ones.
// In YAML and JSON it is either the string "all" or a list of queue names.
type QueueSelector []string

// All reports whether the selector means every queue of the user.
func (s QueueSelector) All() bool { return len(s) == 1 && s[0] == "all" }

// UnmarshalJSON accepts "all", "support" or ["support","sales"].
func (s *QueueSelector) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = QueueSelector{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("queues: want \"all\" or a list of queue names")
	}
	*s = many
	return nil
}

// Resolve lists the queues the selector picks for u, in u's order; named queues u is not in
// are left out.
func (s QueueSelector) Resolve(u *User) []string {
	var out []string
	for _, m := range u.Queues {
		if s.All() || slices.Contains(s, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Action is one step of a profile's on_enter or on_exit chain. Which fields matter depends on
// Kind; Validate says which are wrong.
type Action struct {
	Kind ActionKind `json:"action" mapstructure:"action"`
	// Disabled keeps the action in the profile without running it.
	Disabled bool `json:"disabled,omitempty" mapstructure:"disabled"`
	// Enabled is refused by validation, with a hint: it read as "disabled" to some and as
	// "switched off" to others (disabled: true and on: false say which). It is read only to be
	// refused, and to migrate personal profiles stored before (StateStore).
	Enabled *bool `json:"enabled,omitempty" mapstructure:"enabled"`
	// On switches dnd, mobile, forward, no_answer, caller_id, location and variable on (default)
	// or off (unset); the other kinds refuse it.
	On *bool `json:"on,omitempty" mapstructure:"on"`

	Queues   QueueSelector `json:"queues,omitempty" mapstructure:"queues"`       // queue_*
	Reason   string        `json:"reason,omitempty" mapstructure:"reason"`       // queue_pause; default the profile name
	Families []Family      `json:"families,omitempty" mapstructure:"families"`   // followme, caller_id
	Order    RingOrder     `json:"order,omitempty" mapstructure:"order"`         // followme
	RingTime int           `json:"ring_time,omitempty" mapstructure:"ring_time"` // followme, seconds
	// RingTimes are the seconds of each family's step, in Families' order (followme,
	// sequential): [10, 25] rings the first family 10 s, then the second 25 s.
	RingTimes []int       `json:"ring_times,omitempty" mapstructure:"ring_times"`
	Type      ForwardType `json:"type,omitempty" mapstructure:"type"`       // forward
	To        string      `json:"to,omitempty" mapstructure:"to"`           // forward, no_answer ("voicemail" or a number)
	Value     string      `json:"value,omitempty" mapstructure:"value"`     // caller_id, variable
	Device    string      `json:"device,omitempty" mapstructure:"device"`   // location (dial string), lamp (Custom:name)
	State     string      `json:"state,omitempty" mapstructure:"state"`     // presence state, lamp state
	Message   string      `json:"message,omitempty" mapstructure:"message"` // presence message
	Scope     string      `json:"scope,omitempty" mapstructure:"scope"`     // variable: astdb (default) or global
	Name      string      `json:"name,omitempty" mapstructure:"name"`       // variable: FAMILY/key or NAME
	URL       string      `json:"url,omitempty" mapstructure:"url"`         // webhook
	Timeout   string      `json:"timeout,omitempty" mapstructure:"timeout"` // webhook, e.g. "2s"
}

// IsEnabled reports whether the action runs.
func (a Action) IsEnabled() bool { return !a.Disabled }

// ActionFields lists the fields that mean something for an action of kind k, besides action
// and disabled, by the names the configuration and the API give them; every other field is
// refused on that kind. nil for an unknown kind.
func ActionFields(k ActionKind) []string {
	switch k {
	case ActionQueueLogin, ActionQueueLogout, ActionQueueUnpause:
		return []string{"queues"}
	case ActionQueuePause:
		return []string{"queues", "reason"}
	case ActionDND, ActionMobile:
		return []string{"on"}
	case ActionFollowMe:
		return []string{"families", "order", "ring_time", "ring_times"}
	case ActionForward:
		return []string{"type", "to", "on"}
	case ActionNoAnswer:
		return []string{"to", "on"}
	case ActionCallerID:
		return []string{"value", "families", "on"}
	case ActionLocation:
		return []string{"device", "on"}
	case ActionPresence:
		return []string{"state", "message"}
	case ActionLamp:
		return []string{"device", "state"}
	case ActionVariable:
		return []string{"scope", "name", "value", "on"}
	case ActionWebhook:
		return []string{"url", "timeout"}
	}
	return nil
}

// setFields lists the fields of ActionFields' names that a has a value for.
func (a Action) setFields() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"on", a.On != nil}, {"queues", len(a.Queues) > 0}, {"reason", a.Reason != ""}, {"families", len(a.Families) > 0},
		{"order", a.Order != ""}, {"ring_time", a.RingTime != 0}, {"ring_times", len(a.RingTimes) > 0}, {"type", a.Type != ""}, {"to", a.To != ""},
		{"value", a.Value != ""}, {"device", a.Device != ""}, {"state", a.State != ""}, {"message", a.Message != ""},
		{"scope", a.Scope != ""}, {"name", a.Name != ""}, {"url", a.URL != ""}, {"timeout", a.Timeout != ""},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// IsOn reports whether the action switches its state on (the default) rather than off.
func (a Action) IsOn() bool { return a.On == nil || *a.On }

// String describes the action for logs and errors.
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(string(a.Kind))
	if !a.IsOn() {
		b.WriteString(" off")
	}
	if len(a.Queues) > 0 {
		b.WriteString(" " + strings.Join(a.Queues, ","))
	}
	if !a.IsEnabled() {
		b.WriteString(" (disabled)")
	}
	return b.String()
}

// PresenceLabel is the neutral text of a presence state ("Away" for away): what colleagues and
// the phones see of a user in a private profile instead of the profile's name and info.
func PresenceLabel(state string) string {
	switch state {
	case "available":
		return "Available"
	case "away":
		return "Away"
	case "xa":
		return "Extended away"
	case "dnd":
		return "Do not disturb"
	case "chat":
		return "Available to chat"
	case "unavailable":
		return "Unavailable"
	}
	return "Not set"
}
