package presence

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/presenced/presenced/internal/secret"
)

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	digitsPattern    = regexp.MustCompile(`^[0-9]{1,8}$`)
	extensionPattern = regexp.MustCompile(`^[0-9]{1,20}$`)
	dialPattern      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*/[^\s,|&]+$`)
	queueNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,80}$`)
	numberPattern    = regexp.MustCompile(`^\+?[0-9*#]{1,32}$`)
	variablePattern  = regexp.MustCompile(`^[A-Za-z0-9_]+(/[A-Za-z0-9_.-]+)*$`)
)

// maxVariableName bounds the name of a variable (astdb FAMILY/key or global).
const maxVariableName = 200

// PresenceStates lists the presence states PRESENCE_STATE accepts (ast_presence_state_val).
func PresenceStates() []string {
	return []string{"not_set", "unavailable", "available", "away", "xa", "chat", "dnd"}
}

// LampStates lists the states DEVICE_STATE(Custom:...) accepts, what a lamp can be set to
// (ast_devstate_val); UNKNOWN is not one.
func LampStates() []string {
	return []string{"NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"}
}

// ValidVariableName reports whether name may name a variable presenced writes: an astdb
// FAMILY/key or a global. It keeps out '(' so that a name can never make Getvar or Setvar call
// a dialplan function.
func ValidVariableName(name string) bool { return variablePattern.MatchString(name) }

// ValidationError lists every problem found, each naming its field path.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "; ") }

type problems struct{ list []string }

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, path+": "+fmt.Sprintf(format, args...))
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: p.list}
}

// ValidateProfile checks a personal profile of user u against the catalog: the rules of every
// profile, the personal rules (only what is u's own, PersonalRules), the limits, and its
// activation number must not clash with another profile of the user (others lists the user's
// other personal profiles).
func (c *Catalog) ValidateProfile(u *User, pr *Profile, others []*Profile) error {
	var p problems
	c.validateProfile(&p, "profile", pr)
	for i, chain := range [][]Action{pr.OnEnter, pr.OnExit} {
		for j := range chain {
			path := fmt.Sprintf("%s[%d]", []string{"on_enter", "on_exit"}[i], j)
			if chain[j].Kind == ActionWebhook {
				p.add(path, "webhooks are for system-wide profiles only (a user could make presenced call any address)")
				continue
			}
			// The personal rules are checked on actions that are valid as such: one problem
			// per field is enough.
			var base problems
			if c.validateAction(&base, path, &chain[j]); len(base.list) == 0 {
				c.allowPersonal(&p, path, u, &chain[j])
			}
		}
	}
	if n := len(others) + 1; n > c.limits.PersonalProfiles {
		p.add("id", "you have %d personal profiles already, the limit is %d (limits.personal_profiles)", len(others), c.limits.PersonalProfiles)
	}
	if _, system := c.profiles[pr.ID]; system {
		p.add("id", "%q is a system-wide profile", pr.ID)
	}
	if pr.Activation != "" {
		for _, o := range append(slices.Clone(c.Profiles), others...) {
			if o.ID != pr.ID && o.Activation == pr.Activation {
				p.add("activation", "%q is already the activation number of profile %q", pr.Activation, o.ID)
			}
		}
	}
	return p.err()
}

func validateUser(p *problems, path string, u *User, zones ZoneCache) {
	if !idPattern.MatchString(string(u.ID)) {
		p.add(path+".id", "%q must be 1-64 letters, digits, '.', '-' or '_'", u.ID)
	}
	if u.ID == "admin" {
		p.add(path+".id", `"admin" is reserved: it names the admin token's switches in the journal`)
	}
	if !extensionPattern.MatchString(u.Extension) {
		p.add(path+".extension", "%q must be digits", u.Extension)
	}
	if len(u.Devices) == 0 {
		p.add(path+".devices", "at least one device is required")
	}
	for i, d := range u.Devices {
		if !dialPattern.MatchString(d.Dial) {
			p.add(fmt.Sprintf("%s.devices[%d].dial", path, i), "%q is not a dial string such as PJSIP/1001", d.Dial)
		}
		if !d.Family.Valid() {
			p.add(fmt.Sprintf("%s.devices[%d].family", path, i), "%q is not one of %s", d.Family, joinFamilies(Families()))
		}
	}
	seen := map[string]bool{}
	for i, q := range u.Queues {
		qp := fmt.Sprintf("%s.queues[%d]", path, i)
		if !queueNamePattern.MatchString(q.Name) {
			p.add(qp+".name", "%q is not a queue name", q.Name)
		}
		if seen[q.Name] {
			p.add(qp+".name", "queue %q listed twice", q.Name)
		}
		seen[q.Name] = true
		if q.Penalty < 0 {
			p.add(qp+".penalty", "%d must not be negative", q.Penalty)
		} else if q.Penalty > MaxPenalty {
			p.add(qp+".penalty", "%d is more than %d, the highest penalty app_queue keeps (a C int)", q.Penalty, MaxPenalty)
		}
	}
	validateSecrets(p, path, u)
	if u.TimeZone != "" {
		if _, err := zones.Load(u.TimeZone); err != nil {
			p.add(path+".time_zone", "%q is not a known time zone", u.TimeZone)
		}
	}
	if u.DefaultProfile != "" && !idPattern.MatchString(u.DefaultProfile) {
		p.add(path+".default_profile", "%q is not a profile id", u.DefaultProfile)
	}
	if badText(u.Name) || utf8.RuneCountInString(u.Name) > 80 {
		p.add(path+".name", "must be at most 80 characters without control characters")
	}
	for i, n := range u.CallerIDs {
		if !callerIDNumberPattern.MatchString(n) {
			p.add(fmt.Sprintf("%s.caller_ids[%d]", path, i), "%q must be 1-20 digits with an optional leading +", n)
		}
	}
}

// validateSecrets checks the user's token and PIN: at most one of token, token_hash and
// token_file (the loader has read token_file into Token, so a Token with TokenFile set came
// from the file), a token long and random enough (secret.CheckToken), a hash presenced can
// verify, and a PIN of 1-8 digits. No message quotes a secret.
func validateSecrets(p *problems, path string, u *User) {
	tokenKey := path + ".token"
	if u.TokenFile != "" {
		tokenKey = path + ".token_file"
	}
	if u.Token != "" && u.TokenHash != "" {
		p.add(path+".token_hash", "set only one of token, token_hash and token_file")
	} else if u.Token != "" {
		if secret.IsHash(u.Token) {
			p.add(tokenKey, "is a hash: give it as token_hash")
		} else if err := secret.CheckToken(u.Token); err != nil {
			p.add(tokenKey, "%v", err)
		}
	}
	if u.TokenHash != "" {
		if _, err := secret.ParseHash(u.TokenHash); err != nil {
			p.add(path+".token_hash", "%v", err)
		}
	}
	if u.PasswordHash != "" {
		if _, err := secret.ParseHash(u.PasswordHash); err != nil {
			p.add(path+".password_hash", "%v", err)
		}
	}
	pinKey := path + ".pin"
	if u.PINFile != "" {
		pinKey = path + ".pin_file"
	}
	if u.PIN != "" && u.PINHash != "" {
		p.add(path+".pin_hash", "set only one of pin, pin_hash and pin_file")
	} else if u.PIN != "" && !digitsPattern.MatchString(u.PIN) {
		p.add(pinKey, "must be 1-8 digits")
	}
	if u.PINHash != "" {
		if _, err := secret.ParseHash(u.PINHash); err != nil {
			p.add(path+".pin_hash", "%v", err)
		}
	}
}

func (c *Catalog) validateProfile(p *problems, path string, pr *Profile) {
	if !idPattern.MatchString(pr.ID) {
		p.add(path+".id", "%q must be 1-64 letters, digits, '.', '-' or '_'", pr.ID)
	}
	if pr.Name == "" {
		pr.Name = pr.ID
	}
	if badText(pr.Name) || utf8.RuneCountInString(pr.Name) > 80 || len(pr.Name) > maxNameBytes {
		p.add(path+".name", "must be at most 80 characters (%d bytes) without control characters", maxNameBytes)
	}
	if pr.Colour != "" && !colourPattern.MatchString(pr.Colour) {
		p.add(path+".colour", "%q is neither a colour name such as green nor #rgb or #rrggbb", pr.Colour)
	}
	if pr.Icon != "" && !iconPattern.MatchString(pr.Icon) {
		p.add(path+".icon", "%q must be 1-40 lower-case letters, digits and '-'", pr.Icon)
	}
	if n := len(pr.OnEnter) + len(pr.OnExit); n > c.limits.Actions {
		chain := ".on_enter"
		if len(pr.OnEnter) == 0 {
			chain = ".on_exit"
		}
		p.add(path+chain, "%d actions in on_enter and on_exit, the limit is %d (limits.actions)", n, c.limits.Actions)
	}
	if pr.Activation != "" && !digitsPattern.MatchString(pr.Activation) {
		p.add(path+".activation", "%q must be 1-8 digits", pr.Activation)
	}
	if pr.Visibility != "" && pr.Visibility != VisibilityPublic && pr.Visibility != VisibilityPrivate {
		p.add(path+".visibility", "%q is not public or private", pr.Visibility)
	}
	if pr.Presence != "" && !slices.Contains(PresenceStates(), pr.Presence) {
		p.add(path+".presence", "%q is not one of %s", pr.Presence, strings.Join(PresenceStates(), ", "))
	}
	for i := range pr.OnEnter {
		c.validateAction(p, fmt.Sprintf("%s.on_enter[%d]", path, i), &pr.OnEnter[i])
	}
	for i := range pr.OnExit {
		c.validateAction(p, fmt.Sprintf("%s.on_exit[%d]", path, i), &pr.OnExit[i])
	}
}

func (c *Catalog) validateAction(p *problems, path string, a *Action) {
	if !slices.Contains(ActionKinds(), a.Kind) {
		if a.Kind == "" {
			p.add(path+".action", "missing")
		} else {
			p.add(path, "unknown action %q", a.Kind)
		}
		return
	}
	allowed := ActionFields(a.Kind)
	if a.Enabled != nil {
		switch {
		case *a.Enabled:
			p.add(path+".enabled", "is not a key: actions run unless disabled: true; remove it")
		case slices.Contains(allowed, "on"):
			p.add(path+".enabled", "is not a key: to switch %s off write on: false (probably meant); to keep the action without running it write disabled: true", a.Kind)
		default:
			p.add(path+".enabled", "is not a key: to keep the action without running it write disabled: true (%s has no on: false)", a.Kind)
		}
	}
	for _, f := range a.setFields() {
		if !slices.Contains(allowed, f) {
			p.add(path+"."+f, "has no meaning for %s (its fields: %s, disabled)", a.Kind, strings.Join(allowed, ", "))
		}
	}
	for _, f := range []struct{ name, v string }{
		{"reason", a.Reason}, {"to", a.To}, {"value", a.Value}, {"device", a.Device}, {"state", a.State},
		{"message", a.Message}, {"scope", a.Scope}, {"name", a.Name}, {"url", a.URL}, {"timeout", a.Timeout},
	} {
		if badText(f.v) {
			p.add(path+"."+f.name, "must not contain control characters or invalid UTF-8")
			return
		}
	}
	on := a.IsOn()
	switch a.Kind {
	case ActionQueueLogin, ActionQueueLogout, ActionQueuePause, ActionQueueUnpause:
		if len(a.Queues) == 0 {
			p.add(path+".queues", `required: "all" or a list of queue names`)
		}
		if !a.Queues.All() {
			for _, q := range a.Queues {
				if !c.queues[q] {
					p.add(path+".queues", "unknown queue %q (no user is in it)", q)
				}
			}
		}
		if utf8.RuneCountInString(a.Reason) > 80 || len(a.Reason) > maxNameBytes {
			p.add(path+".reason", "at most 80 characters (%d bytes)", maxNameBytes)
		}
	case ActionFollowMe:
		for _, f := range a.Families {
			if !f.Valid() {
				p.add(path+".families", "%q is not one of %s", f, joinFamilies(Families()))
			}
		}
		if a.Order != "" && a.Order != RingSimultaneous && a.Order != RingSequential {
			p.add(path+".order", "%q is not simultaneous or sequential", a.Order)
		}
		if a.RingTime < 0 || a.RingTime > 600 {
			p.add(path+".ring_time", "%d must be between 0 and 600 seconds", a.RingTime)
		}
		if len(a.RingTimes) > 0 {
			switch {
			case a.Order != RingSequential:
				p.add(path+".ring_times", "only with order: sequential (a simultaneous ring has one ring_time)")
			case len(a.RingTimes) != len(a.Families):
				p.add(path+".ring_times", "%d ring times for %d families: give one per family, in their order", len(a.RingTimes), len(a.Families))
			case a.RingTime != 0:
				p.add(path+".ring_times", "set either ring_time (every step) or ring_times (one per family), not both")
			}
			for i, t := range a.RingTimes {
				if t < 1 || t > 600 {
					p.add(fmt.Sprintf("%s.ring_times[%d]", path, i), "%d must be between 1 and 600 seconds", t)
				}
			}
		}
		seen := map[Family]bool{}
		for _, f := range a.Families {
			if seen[f] {
				p.add(path+".families", "%q listed twice", f)
			}
			seen[f] = true
		}
	case ActionForward:
		if !slices.Contains(ForwardTypes(), a.Type) {
			p.add(path+".type", "%q is not unconditional, busy or no_answer", a.Type)
		}
		if on && !numberPattern.MatchString(a.To) {
			p.add(path+".to", "%q is not a number to forward to", a.To)
		}
	case ActionNoAnswer:
		if on && a.To != "voicemail" && !numberPattern.MatchString(a.To) {
			p.add(path+".to", `%q is neither "voicemail" nor a number`, a.To)
		}
	case ActionCallerID:
		if on && (a.Value == "" || utf8.RuneCountInString(a.Value) > 80) {
			p.add(path+".value", "a caller ID of 1-80 characters is required")
		}
		if leadingBlank(a.Value) {
			p.add(path+".value", "must not start with a blank (AMI drops it)")
		}
		seen := map[Family]bool{}
		for _, f := range a.Families {
			switch {
			case !f.Valid():
				p.add(path+".families", "%q is not one of %s", f, joinFamilies(Families()))
			case seen[f]:
				p.add(path+".families", "%q listed twice", f)
			}
			seen[f] = true
		}
	case ActionLocation:
		if on && (!dialPattern.MatchString(a.Device) || len(a.Device) > 200) {
			p.add(path+".device", "%q is not a dial string such as PJSIP/hotdesk-3", a.Device)
		}
	case ActionPresence:
		if a.State != "" && !slices.Contains(PresenceStates(), a.State) {
			p.add(path+".state", "%q is not one of %s", a.State, strings.Join(PresenceStates(), ", "))
		}
		if len(a.Message) > MaxPresenceMessage {
			p.add(path+".message", "at most %d bytes: a message with commas is sent base64-encoded, and Asterisk keeps 255 bytes of it; this one has %d", MaxPresenceMessage, len(a.Message))
		}
	case ActionLamp:
		if !lampPattern.MatchString(a.Device) {
			p.add(path+".device", "%q must be a Custom: device of at most 80 letters, digits and _.:@#*+-, e.g. Custom:MEETING1001", a.Device)
		}
		if !slices.Contains(LampStates(), strings.ToUpper(a.State)) {
			p.add(path+".state", "%q is not one of %s", a.State, strings.Join(LampStates(), ", "))
		}
	case ActionVariable:
		if a.Scope != "" && a.Scope != "astdb" && a.Scope != "global" {
			p.add(path+".scope", "%q is not astdb or global", a.Scope)
		}
		if !variablePattern.MatchString(a.Name) || len(a.Name) > maxVariableName || (a.Scope != "global" && !strings.Contains(a.Name, "/")) {
			p.add(path+".name", "%q must be FAMILY/key for astdb or NAME for a global, at most %d characters", a.Name, maxVariableName)
		}
		limit := MaxAstDBValue
		if a.Scope == "global" {
			limit = MaxGlobalValue
		}
		if len(a.Value) > limit {
			p.add(path+".value", "at most %d bytes (AMI's header line limit); this one has %d", limit, len(a.Value))
		}
		if leadingBlank(a.Value) {
			p.add(path+".value", "must not start with a blank (AMI drops it)")
		}
	case ActionWebhook:
		if u, err := url.Parse(a.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(a.URL) > 2000 {
			p.add(path+".url", "%q is not an http(s) URL", a.URL)
		}
		if a.Timeout != "" {
			if d, err := time.ParseDuration(a.Timeout); err != nil || d <= 0 || d > time.Minute {
				p.add(path+".timeout", "%q must be a duration up to 1m", a.Timeout)
			}
		}
	}
}

func leadingBlank(s string) bool { return strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t") }

func joinFamilies(fs []Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// ZoneCache loads time zones by name, each once: time.LoadLocation reads and parses the zone
// database at every call, and 10,000 users in one zone would load it 10,000 times. Not safe
// for concurrent use; make one where many users are looked at.
type ZoneCache map[string]zoneResult

type zoneResult struct {
	loc *time.Location
	err error
}

// Load is time.LoadLocation, remembered.
func (z ZoneCache) Load(name string) (*time.Location, error) {
	if r, ok := z[name]; ok {
		return r.loc, r.err
	}
	loc, err := time.LoadLocation(name)
	z[name] = zoneResult{loc, err}
	return loc, err
}
