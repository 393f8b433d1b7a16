package presence

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PersonalRules is what users may put into their own profiles: the admin's configuration
// (personal_profiles). Personal profiles may only address state that is the user's own; the
// rules are checked when a profile is saved and again every time a user's desired state is
// compiled, so a profile stored under older, looser rules cannot act beyond the current ones.
// System-wide profiles are the admin's and keep full power.
type PersonalRules struct {
	// AllowedActions are the action kinds personal profiles may use. Nil means
	// DefaultPersonalActions: every kind but variable, lamp and webhook. Webhooks are never
	// allowed in personal profiles (a user could make presenced call any address).
	AllowedActions []string `json:"allowed_actions,omitempty" mapstructure:"allowed_actions"`
	// Variables are the astdb keys a personal variable action may write, as patterns with
	// {ext} for the user's extension; a pattern ending in * matches every key it starts
	// (e.g. "PROFILE/{ext}/var/*"), another one that key alone. Globals are never allowed.
	Variables []string `json:"variables,omitempty" mapstructure:"variables"`
	// Lamps are the Custom: devices a personal lamp action may set, as patterns like
	// Variables (e.g. "Custom:USER{ext}-*").
	Lamps []string `json:"lamps,omitempty" mapstructure:"lamps"`
	// ForwardAllow, when not empty, are regular expressions one of which a personal forward
	// or no-answer number must match; ForwardDeny are regular expressions none of which it
	// may match (e.g. "^00" for international, "^9" for an outside line).
	ForwardAllow []string `json:"forward_allow,omitempty" mapstructure:"forward_allow"`
	ForwardDeny  []string `json:"forward_deny,omitempty" mapstructure:"forward_deny"`

	allowed      []ActionKind
	forwardAllow []*regexp.Regexp
	forwardDeny  []*regexp.Regexp
}

// DefaultPersonalActions are the action kinds personal profiles may use unless the admin says
// otherwise: everything but variable, lamp (which need a namespace the admin opens) and
// webhook (never).
func DefaultPersonalActions() []ActionKind {
	return slices.DeleteFunc(ActionKinds(), func(k ActionKind) bool {
		return k == ActionVariable || k == ActionLamp || k == ActionWebhook
	})
}

// Limits bound what one user can make presenced store, send and keep.
type Limits struct {
	// InfoLength is the longest additional info of a switch, in characters (at most
	// MaxInfoBytes bytes whatever it is). Zero means DefaultLimits.
	InfoLength int `json:"info_length" mapstructure:"info_length"`
	// PersonalProfiles is how many personal profiles one user may have.
	PersonalProfiles int `json:"personal_profiles" mapstructure:"personal_profiles"`
	// Actions is how many actions one profile may have, on_enter and on_exit together.
	Actions int `json:"actions" mapstructure:"actions"`
	// ExternalTriggers is how many external triggers may hold one user at once (package trigger).
	ExternalTriggers int `json:"external_triggers" mapstructure:"external_triggers"`
}

// DefaultLimits are the limits of a configuration that sets none.
func DefaultLimits() Limits {
	return Limits{InfoLength: 200, PersonalProfiles: 20, Actions: 20, ExternalTriggers: 20}
}

// Bounds of values that end up in AMI actions. Asterisk reads an AMI header line of at most
// 1,022 bytes ("Name: value", CR LF not counted; a longer line is discarded with the whole
// action), so every value presenced writes must fit with its header's name.
const (
	// MaxAMIHeader is the longest AMI header line Asterisk accepts, "Name: value".
	MaxAMIHeader = 1022
	// MaxAstDBValue is the longest astdb value (DBPut's "Val: " header).
	MaxAstDBValue = MaxAMIHeader - len("Val: ")
	// MaxGlobalValue is the longest global variable value (Setvar's "Value: " header).
	MaxGlobalValue = MaxAMIHeader - len("Value: ")
	// MaxInfoBytes bounds the additional info in bytes, whatever InfoLength says: it goes
	// into astdb with the profile name (PROFILE/<ext>/dndtext).
	MaxInfoBytes = 500
	// MaxPresenceMessage is the longest presence message: Asterisk keeps 255 bytes of a
	// base64-encoded one (a message with commas), and generated messages are cut to it.
	MaxPresenceMessage = 255
	// MaxPenalty is the highest queue penalty: app_queue keeps it in a C int.
	MaxPenalty = math.MaxInt32
	// maxNameBytes bounds a profile name in bytes (80 characters, 200 bytes).
	maxNameBytes = 200
)

var (
	personalNumberPattern = regexp.MustCompile(`^\+?[0-9]{1,20}$`)
	colourPattern         = regexp.MustCompile(`^(#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[a-z]{1,20})$`)
	iconPattern           = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	lampPattern           = regexp.MustCompile(`^Custom:[A-Za-z0-9_.:@#*+-]{1,80}$`)
	callerIDNumberPattern = regexp.MustCompile(`^\+?[0-9]{1,20}$`)
)

// validate checks the rules and compiles their patterns; n names presenced's own state, which
// no pattern may reach (a variable pattern over PROFILE/{ext}/* would let users write their
// caller ID or ring list around every other rule).
func (r *PersonalRules) validate(p *problems, n Naming) {
	r.allowed = DefaultPersonalActions()
	if r.AllowedActions != nil {
		r.allowed = nil
		for i, k := range r.AllowedActions {
			kind := ActionKind(k)
			switch {
			case !slices.Contains(ActionKinds(), kind):
				p.add(fmt.Sprintf("personal_profiles.allowed_actions[%d]", i), "unknown action %q", k)
			case kind == ActionWebhook:
				p.add(fmt.Sprintf("personal_profiles.allowed_actions[%d]", i),
					"webhooks are for system-wide profiles only (a user could make presenced call any address)")
			default:
				r.allowed = append(r.allowed, kind)
			}
		}
	}
	owned := ownedKeys(n, "1001")
	checkPatterns := func(key string, pats []string, valid *regexp.Regexp, lamp bool, managed []string) {
		for i, pat := range pats {
			path := fmt.Sprintf("personal_profiles.%s[%d]", key, i)
			if lamp && !strings.HasPrefix(pat, "Custom:") {
				p.add(path, "%q must be a Custom: device pattern, e.g. Custom:USER{ext}-*", pat)
				continue
			}
			if err := checkPattern(pat, valid, lamp); err != nil {
				p.add(path, "%q: %v", pat, err)
				continue
			}
			for _, name := range managed {
				if matchPattern(pat, "1001", name) {
					p.add(path, "%q reaches %s, which presenced itself manages", pat, strings.ReplaceAll(name, "1001", "<ext>"))
					break
				}
			}
		}
	}
	checkPatterns("variables", r.Variables, variablePattern, false, owned.astdb)
	checkPatterns("lamps", r.Lamps, lampPattern, true, owned.lamps)
	compile := func(key string, pats []string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for i, pat := range pats {
			re, err := regexp.Compile(pat)
			if err != nil {
				p.add(fmt.Sprintf("%s[%d]", key, i), "%q is not a regular expression: %v", pat, err)
				continue
			}
			out = append(out, re)
		}
		return out
	}
	r.forwardAllow = compile("personal_profiles.forward_allow", r.ForwardAllow)
	r.forwardDeny = compile("personal_profiles.forward_deny", r.ForwardDeny)
}

// checkPattern accepts a key pattern: {ext} at most once and, where it is not the end, followed
// by something that is not a digit (so that extension 100's namespace does not contain 1001's);
// without {ext} it is one key shared by every user, which the admin may mean. The pattern with
// a sample extension (and without its trailing *) must be a valid name by valid.
func checkPattern(pat string, valid *regexp.Regexp, lamp bool) error {
	if strings.Count(pat, "{ext}") > 1 {
		return fmt.Errorf("{ext} may appear once")
	}
	if i := strings.Index(pat, "{ext}"); i >= 0 {
		rest := pat[i+len("{ext}"):]
		if rest == "*" || (rest != "" && rest[0] >= '0' && rest[0] <= '9') {
			return fmt.Errorf("{ext} must be followed by a separator such as '-' or '/' (extension 100 would reach 1001's names)")
		}
	}
	body := strings.TrimSuffix(pat, "*")
	if strings.Contains(body, "*") {
		return fmt.Errorf("* may only end the pattern")
	}
	sample := strings.ReplaceAll(body, "{ext}", "1001")
	if strings.HasSuffix(pat, "*") {
		sample += "x"
	}
	if !lamp && !strings.Contains(sample, "/") {
		return fmt.Errorf("must be an astdb FAMILY/key pattern")
	}
	if !valid.MatchString(sample) {
		return fmt.Errorf("makes invalid names")
	}
	return nil
}

// matchPattern reports whether name is one of the names pattern pat gives user extension ext.
func matchPattern(pat, ext, name string) bool {
	want := strings.ReplaceAll(strings.TrimSuffix(pat, "*"), "{ext}", ext)
	if strings.HasSuffix(pat, "*") {
		return strings.HasPrefix(name, want) && len(name) > len(want)
	}
	return name == want
}

// owned are the names presenced manages for a user.
type owned struct {
	astdb []string
	lamps []string
}

// ownedKeys lists the astdb keys and lamps presenced writes for a user with extension ext
// (a profile lamp stands for all of them with number 1).
func ownedKeys(n Naming, ext string) owned {
	u := &User{Extension: ext}
	o := owned{lamps: []string{n.DNDLampOf(u), n.ProfileLampOf(u, "1")}}
	o.astdb = []string{n.DNDFamily + "/" + ext, n.ForwardFamily + "/" + ext, n.BusyFamily + "/" + ext, n.NoAnswerFamily + "/" + ext}
	for _, k := range []string{"active", "info", "dndtext", "dialstring", "ringmode", "ringtime", "noanswer", "callerid", "location"} {
		o.astdb = append(o.astdb, n.ProfileFamily+"/"+ext+"/"+k)
	}
	for _, f := range Families() {
		o.astdb = append(o.astdb, n.ProfileFamily+"/"+ext+"/callerid/"+string(f))
	}
	return o
}

// CheckPersonalAction checks one action of a personal profile of u as it would be checked
// when saved: the rules of every action and the personal rules.
func (c *Catalog) CheckPersonalAction(u *User, a Action) error {
	var p problems
	c.validateAction(&p, "action", &a)
	if len(p.list) == 0 {
		if a.Kind == ActionWebhook {
			p.add("action", "webhooks are for system-wide profiles only")
		} else {
			c.allowPersonal(&p, "action", u, &a)
		}
	}
	return p.err()
}

// allowPersonal checks one action of a personal profile of u against the rules: only what
// is u's own. It is the part of a personal profile's validation that a profile stored earlier
// is checked against again when u's desired state is compiled.
func (c *Catalog) allowPersonal(p *problems, path string, u *User, a *Action) {
	r := &c.rules
	if !slices.Contains(r.allowed, a.Kind) {
		p.add(path+".action", "%q is not allowed in personal profiles (personal_profiles.allowed_actions)", a.Kind)
		return
	}
	on := a.IsOn()
	switch a.Kind {
	case ActionQueueLogin, ActionQueueLogout, ActionQueuePause, ActionQueueUnpause:
		if !a.Queues.All() {
			for _, q := range a.Queues {
				if _, ok := u.Queue(q); !ok {
					p.add(path+".queues", "%q is not one of your queues", q)
				}
			}
		}
	case ActionForward, ActionNoAnswer:
		if on && !(a.Kind == ActionNoAnswer && a.To == "voicemail") {
			if err := r.checkNumber(a.To); err != nil {
				p.add(path+".to", "%v", err)
			}
		}
	case ActionCallerID:
		if on && !c.callerIDAllowed(u, a.Value) {
			p.add(path+".value", "%q is not a caller ID assigned to you (%s); the name, if any, must be %q",
				a.Value, strings.Join(callerIDs(u), ", "), u.DisplayName())
		}
	case ActionLocation:
		if on && !slices.Contains(u.dials(), a.Device) && !slices.Contains(c.hotDesks, a.Device) {
			p.add(path+".device", "%q is neither one of your devices nor a hot desk", a.Device)
		}
	case ActionLamp:
		if !slices.ContainsFunc(r.Lamps, func(pat string) bool { return matchPattern(pat, u.Extension, a.Device) }) {
			p.add(path+".device", "%q is not a lamp of yours (personal_profiles.lamps: %s)", a.Device, orNone(r.Lamps))
		}
	case ActionVariable:
		if a.Scope == "global" {
			p.add(path+".scope", "global variables are for system-wide profiles only")
			return
		}
		if !slices.ContainsFunc(r.Variables, func(pat string) bool { return matchPattern(pat, u.Extension, a.Name) }) {
			p.add(path+".name", "%q is not a key of yours (personal_profiles.variables: %s)", a.Name, orNone(r.Variables))
		}
	}
}

func orNone(pats []string) string {
	if len(pats) == 0 {
		return "none opened"
	}
	return strings.Join(pats, ", ")
}

// checkNumber accepts a forward or no-answer number of a personal profile: digits with an
// optional leading +, no * or # (which would dial feature codes), within the admin's allow
// and deny patterns.
func (r *PersonalRules) checkNumber(to string) error {
	if !personalNumberPattern.MatchString(to) {
		return fmt.Errorf("%q must be 1-20 digits with an optional leading + (no * or #)", to)
	}
	for _, re := range r.forwardDeny {
		if re.MatchString(to) {
			return fmt.Errorf("%q is not an allowed destination (personal_profiles.forward_deny %q)", to, re)
		}
	}
	if len(r.forwardAllow) > 0 && !slices.ContainsFunc(r.forwardAllow, func(re *regexp.Regexp) bool { return re.MatchString(to) }) {
		return fmt.Errorf("%q is not an allowed destination (personal_profiles.forward_allow)", to)
	}
	return nil
}

// callerIDs are the numbers u may present: their extension and the caller_ids the admin
// assigned.
func callerIDs(u *User) []string { return append([]string{u.Extension}, u.CallerIDs...) }

// callerIDAllowed reports whether v is one of u's numbers, alone or as "Name" <number> with
// u's own display name.
func (c *Catalog) callerIDAllowed(u *User, v string) bool {
	num := v
	if i := strings.LastIndex(v, "<"); i >= 0 && strings.HasSuffix(v, ">") {
		name := strings.TrimSpace(v[:i])
		if unq, ok := strings.CutPrefix(name, `"`); ok {
			name, ok = strings.CutSuffix(unq, `"`)
			if !ok {
				return false
			}
		}
		if name != u.DisplayName() {
			return false
		}
		num = v[i+1 : len(v)-1]
	}
	return slices.Contains(callerIDs(u), num)
}

// dials lists the dial strings of u's devices.
func (u *User) dials() []string {
	out := make([]string, len(u.Devices))
	for i, d := range u.Devices {
		out[i] = d.Dial
	}
	return out
}

// badText reports whether s is not text a user may give: invalid UTF-8 or a control character
// (CR and LF would end an AMI header, the others end up in logs and on phones' displays).
func badText(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl)
}

// ValidateInfo checks the additional info of a switch against the limits.
func (c *Catalog) ValidateInfo(info string) error {
	var p problems
	c.validateInfo(&p, info)
	return p.err()
}

func (c *Catalog) validateInfo(p *problems, info string) {
	switch {
	case badText(info):
		p.add("info", "must not contain control characters or invalid UTF-8")
	case utf8.RuneCountInString(info) > c.limits.InfoLength:
		p.add("info", "at most %d characters", c.limits.InfoLength)
	case len(info) > MaxInfoBytes:
		p.add("info", "at most %d bytes", MaxInfoBytes)
	}
}

// Limits are the catalog's limits.
func (c *Catalog) Limits() Limits { return c.limits }

// truncateText cuts s to at most n bytes, at a character boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// PersonalActions are the action kinds personal profiles may use
// (personal_profiles.allowed_actions), for editors to offer.
func (c *Catalog) PersonalActions() []ActionKind { return slices.Clone(c.rules.allowed) }
