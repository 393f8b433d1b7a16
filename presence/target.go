package presence

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Naming is how presenced's state lands in Asterisk: interface templates, astdb families,
// device and presence names. {ext} is the user's extension, {n} a profile's activation number.
// The defaults are FreePBX-compatible (docs/asterisk.md §3).
type Naming struct {
	QueueInterface   string `json:"queue_interface" mapstructure:"queue_interface"`
	StateInterface   string `json:"state_interface" mapstructure:"state_interface"`
	DNDFamily        string `json:"dnd_family" mapstructure:"dnd_family"`
	ForwardFamily    string `json:"forward_family" mapstructure:"forward_family"`
	BusyFamily       string `json:"forward_busy_family" mapstructure:"forward_busy_family"`
	NoAnswerFamily   string `json:"forward_no_answer_family" mapstructure:"forward_no_answer_family"`
	ProfileFamily    string `json:"profile_family" mapstructure:"profile_family"`
	DNDLamp          string `json:"dnd_lamp" mapstructure:"dnd_lamp"`
	ProfileLamp      string `json:"profile_lamp" mapstructure:"profile_lamp"`
	PresenceProvider string `json:"presence_provider" mapstructure:"presence_provider"`
	// LampOff is the state of a lamp that is off. INVALID (the default) leaves a hint that
	// combines the lamp with the phone showing the phone's own state, so an offline phone does
	// not look idle (NOT_INUSE would mask it, docs/asterisk.md §4).
	LampOff string `json:"lamp_off" mapstructure:"lamp_off"`
}

// DefaultNaming returns the FreePBX-compatible names.
func DefaultNaming() Naming {
	return Naming{
		QueueInterface:   "Local/{ext}@presenced-queue-member/n",
		StateInterface:   "hint:{ext}@hints",
		DNDFamily:        "DND",
		ForwardFamily:    "CF",
		BusyFamily:       "CFB",
		NoAnswerFamily:   "CFU",
		ProfileFamily:    "PROFILE",
		DNDLamp:          "Custom:DND{ext}",
		ProfileLamp:      "Custom:PROFILE{ext}-{n}",
		PresenceProvider: "CustomPresence:{ext}",
		LampOff:          "INVALID",
	}
}

// Validate checks that every name is set and that the templates use {ext}.
func (n Naming) Validate() error {
	var p problems
	for _, f := range []struct{ key, v string }{
		{"queue_interface", n.QueueInterface}, {"state_interface", n.StateInterface},
		{"dnd_lamp", n.DNDLamp}, {"profile_lamp", n.ProfileLamp}, {"presence_provider", n.PresenceProvider},
	} {
		if !strings.Contains(f.v, "{ext}") {
			p.add("naming."+f.key, "%q must contain {ext}", f.v)
		}
	}
	if !strings.Contains(n.ProfileLamp, "{n}") {
		p.add("naming.profile_lamp", "%q must contain {n}", n.ProfileLamp)
	}
	for _, f := range []struct{ key, v string }{
		{"dnd_family", n.DNDFamily}, {"forward_family", n.ForwardFamily}, {"forward_busy_family", n.BusyFamily},
		{"forward_no_answer_family", n.NoAnswerFamily}, {"profile_family", n.ProfileFamily},
	} {
		if !variablePattern.MatchString(f.v) || strings.Contains(f.v, "/") {
			p.add("naming."+f.key, "%q must be letters, digits and '_' (astdb LIKE wildcards '%%' are not allowed)", f.v)
		}
	}
	if !strings.HasPrefix(n.DNDLamp, "Custom:") || !strings.HasPrefix(n.ProfileLamp, "Custom:") {
		p.add("naming", "lamps must be Custom: devices (the only ones AMI can set)")
	}
	if !strings.HasPrefix(n.PresenceProvider, "CustomPresence:") {
		p.add("naming.presence_provider", "%q must be a CustomPresence: provider", n.PresenceProvider)
	}
	if !slices.Contains(LampStates(), n.LampOff) {
		p.add("naming.lamp_off", "%q is not one of %s", n.LampOff, strings.Join(LampStates(), ", "))
	}
	return p.err()
}

func expand(tmpl, ext string) string { return strings.ReplaceAll(tmpl, "{ext}", ext) }

// Interface is the queue member interface of u.
func (n Naming) Interface(u *User) string { return expand(n.QueueInterface, u.Extension) }

// ProfileLampOf is the lamp of the profile with activation number num for u.
func (n Naming) ProfileLampOf(u *User, num string) string {
	return strings.ReplaceAll(expand(n.ProfileLamp, u.Extension), "{n}", num)
}

// DNDLampOf is u's DND lamp (Custom:DND<ext> by default).
func (n Naming) DNDLampOf(u *User) string { return expand(n.DNDLamp, u.Extension) }

// PresenceProviderOf is u's presence provider (CustomPresence:<ext> by default).
func (n Naming) PresenceProviderOf(u *User) string { return expand(n.PresenceProvider, u.Extension) }

// CallerDevice reports whether dial names a phone that places calls as itself, "<tech>/<name>"
// (PJSIP/1001-mobile, IAX2/desk): Asterisk names its calls' channels "<tech>/<name>-<n>", so a
// call can be told to come from it (the device map, feature codes, calls in progress). A Local
// channel, a number through a trunk (PJSIP/+4930123@trunk) or a dial string with more than a
// name is no such phone.
func CallerDevice(dial string) bool {
	tech, name, ok := strings.Cut(dial, "/")
	return ok && tech != "" && name != "" && !strings.EqualFold(tech, "Local") && !strings.ContainsAny(name, "/@:")
}

// DeviceKey is the astdb key of the device map entry of phone dial, "PROFILE/PJSIP:1001-mobile"
// by default: the key the shipped dialplan (deploy/asterisk/extensions_presenced.conf,
// presenced-outbound) looks the calling phone up by. Its "/" is written ":" so that the key is
// one level below the family (a read of a few users' keys reads it alone, package astdb). false
// for a dial string that is no CallerDevice.
func (n Naming) DeviceKey(dial string) (string, bool) {
	if !CallerDevice(dial) {
		return "", false
	}
	tech, name, _ := strings.Cut(dial, "/")
	return n.ProfileFamily + "/" + tech + ":" + name, true
}

// deviceOfKey is the phone a device map key names ("PJSIP/1001-mobile"), or false for a key
// that is no device map key.
func (n Naming) deviceOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, n.ProfileFamily+"/")
	if !ok {
		return "", false
	}
	tech, name, ok := strings.Cut(rest, ":")
	if !ok || !CallerDevice(tech+"/"+name) {
		return "", false
	}
	return tech + "/" + name, true
}

// DeviceEntry is the value of a device map entry: the extension of the user whose phone it is
// and the family the phone counts as, "1001:mobile" (a hot desk the user is bound to counts as
// a desk phone).
func DeviceEntry(ext string, f Family) string { return ext + ":" + string(f) }

// ParseDeviceEntry reads a device map entry's value (DeviceEntry).
func ParseDeviceEntry(v string) (ext string, f Family, ok bool) {
	e, fam, ok := strings.Cut(v, ":")
	if !ok || !extensionPattern.MatchString(e) || !Family(fam).Valid() {
		return "", "", false
	}
	return e, Family(fam), true
}

// Target is PBX state as Asterisk holds it, for one user: the keys are Asterisk's own names.
// As desired state (the Target of a Desired) a nil value means "must not exist"; as observed
// state it means "does not exist". Keys not in a desired Target are not presenced's business.
type Target struct {
	// Interface is the user's queue member interface (Naming.QueueInterface), which a queue
	// concern looks for in every queue Queues names, nil entries included.
	Interface string                    `json:"interface,omitempty"`
	Queues    map[string]*QueueMember   `json:"queues,omitempty"`   // queue → member
	AstDB     map[string]*string        `json:"astdb,omitempty"`    // "FAMILY/key" → value
	Devices   map[string]string         `json:"devices,omitempty"`  // Custom:name → device state
	Presence  map[string]*PresenceValue `json:"presence,omitempty"` // CustomPresence:name → state
	Globals   map[string]*string        `json:"globals,omitempty"`  // global variable → value
}

// Desired is the PBX state a user's state means (Compile, Teardown): a Target and what only
// desired state has. Its JSON is the Target's with "claims" beside its fields.
type Desired struct {
	Target
	// Claims are the astdb keys of AstDB that are claimed rather than owned: the device map
	// entry of a hot desk the user is bound to, which another user bound to it may hold. Each
	// maps to the user's own entry (DeviceEntry). Plan writes a claimed key only where it is
	// absent (the first user bound keeps the hot desk) and deletes it (AstDB nil) only while
	// it holds the user's own entry.
	Claims map[string]string `json:"claims,omitempty"`
}

// QueueMember is a member of one queue.
type QueueMember struct {
	Interface      string `json:"interface"`
	MemberName     string `json:"member_name,omitempty"`
	StateInterface string `json:"state_interface,omitempty"`
	Penalty        int    `json:"penalty"`
	Paused         bool   `json:"paused"`
	Reason         string `json:"reason,omitempty"`
	// Membership says who adds and removes the member. Its JSON is "static": true or
	// "optional": true (MarshalJSON).
	Membership Membership `json:"-"`
}

// Membership is who adds a queue member and removes it.
type Membership string

// The memberships of a queue member.
const (
	// MembershipManaged: presenced adds and removes the member.
	MembershipManaged Membership = ""
	// MembershipStatic: queues.conf does (a static member, which AMI cannot remove); seen on
	// the PBX, or accepted from it by the adopt policy.
	MembershipStatic Membership = "static"
	// MembershipOptional: nobody does, membership is not presenced's business (desired): pause
	// and penalty are set if the user is in the queue, but presenced neither adds nor removes
	// them.
	MembershipOptional Membership = "optional"
)

// queueMemberJSON is the JSON of a QueueMember: its Membership as two flags.
type queueMemberJSON struct {
	Interface      string `json:"interface"`
	MemberName     string `json:"member_name,omitempty"`
	StateInterface string `json:"state_interface,omitempty"`
	Penalty        int    `json:"penalty"`
	Paused         bool   `json:"paused"`
	Reason         string `json:"reason,omitempty"`
	Static         bool   `json:"static,omitempty"`
	Optional       bool   `json:"optional,omitempty"`
}

// MarshalJSON writes m with its Membership as "static": true or "optional": true.
func (m QueueMember) MarshalJSON() ([]byte, error) {
	return json.Marshal(queueMemberJSON{Interface: m.Interface, MemberName: m.MemberName, StateInterface: m.StateInterface,
		Penalty: m.Penalty, Paused: m.Paused, Reason: m.Reason,
		Static: m.Membership == MembershipStatic, Optional: m.Membership == MembershipOptional})
}

// UnmarshalJSON reads what MarshalJSON writes ("static" first, should both flags be set).
func (m *QueueMember) UnmarshalJSON(b []byte) error {
	var j queueMemberJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = QueueMember{Interface: j.Interface, MemberName: j.MemberName, StateInterface: j.StateInterface,
		Penalty: j.Penalty, Paused: j.Paused, Reason: j.Reason}
	switch {
	case j.Static:
		m.Membership = MembershipStatic
	case j.Optional:
		m.Membership = MembershipOptional
	}
	return nil
}

// NewTarget returns an empty Target with its maps made.
func NewTarget() *Target {
	return &Target{Queues: map[string]*QueueMember{}, AstDB: map[string]*string{}, Devices: map[string]string{},
		Presence: map[string]*PresenceValue{}, Globals: map[string]*string{}}
}

// NewDesired returns an empty Desired with its Target's maps made.
func NewDesired() *Desired { return &Desired{Target: *NewTarget()} }

// Active is the profile a user is in, with the additional info of the switch.
type Active struct {
	Profile *Profile
	Info    string
}

// Compile turns u's intent into the PBX state it means: queue members, astdb keys, lamps,
// presence and globals, named by n. active is the user's current profile; profiles lists every
// profile the user has (system-wide and personal), for their lamps. Compile is pure.
func Compile(u *User, in Intent, active Active, profiles []*Profile, n Naming) *Desired {
	d := NewDesired()
	t := &d.Target
	t.Interface = n.Interface(u)
	ext := u.Extension
	db := func(family, key string, v *string) { t.AstDB[family+"/"+key] = v }
	set := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}

	for q, qi := range in.Queues {
		m, ok := u.Queue(q)
		if !ok {
			continue
		}
		if qi.Member != nil && !*qi.Member {
			t.Queues[q] = nil
			continue
		}
		t.Queues[q] = &QueueMember{
			Interface:      n.Interface(u),
			MemberName:     u.DisplayName(),
			StateInterface: expand(n.StateInterface, ext),
			Penalty:        m.Penalty,
			Paused:         qi.Paused,
			Reason:         qi.Reason,
		}
		if qi.Member == nil {
			t.Queues[q].Membership = MembershipOptional
		}
	}

	if active.Profile != nil {
		db(n.ProfileFamily, ext+"/active", set(active.Profile.ID))
		db(n.ProfileFamily, ext+"/info", set(active.Info))
		for _, p := range profiles {
			if p.Activation != "" {
				state := n.LampOff
				if p.ID == active.Profile.ID {
					state = "BUSY"
				}
				t.Devices[n.ProfileLampOf(u, p.Activation)] = state
			}
		}
	}

	if in.DND != nil {
		state, flag := n.LampOff, ""
		if in.DND.On {
			state, flag = "BUSY", "YES"
		}
		db(n.DNDFamily, ext, set(flag))
		db(n.ProfileFamily, ext+"/dndtext", set(in.DND.Text))
		t.Devices[n.DNDLampOf(u)] = state
	}

	// The ring list is always presenced's: until a profile says otherwise (followme, mobile)
	// the user's desk phones ring (DefaultRingList), simultaneously, the dialplan's 20 s.
	if in.RingList == nil && in.Mobile == nil {
		db(n.ProfileFamily, ext+"/dialstring", set(strings.Join(u.DefaultRingList(), "&")))
	} else {
		rl := RingList{Families: DefaultRingFamilies(), Order: RingSimultaneous}
		if in.RingList != nil {
			if len(in.RingList.Families) > 0 {
				rl.Families = slices.Clone(in.RingList.Families)
				rl.RingTimes = in.RingList.RingTimes
			}
			if in.RingList.Order != "" {
				rl.Order = in.RingList.Order
			}
			rl.RingTime = in.RingList.RingTime
		}
		if in.Mobile != nil {
			if i := slices.Index(rl.Families, FamilyMobile); i >= 0 {
				rl.Families = slices.Delete(slices.Clone(rl.Families), i, i+1)
				if len(rl.RingTimes) > i {
					rl.RingTimes = slices.Delete(slices.Clone(rl.RingTimes), i, i+1)
				}
			}
			if *in.Mobile {
				rl.Families = append(slices.Clone(rl.Families), FamilyMobile)
				rl.RingTimes = nil // one step more than the action's times
			}
		}
		steps, times := u.RingSteps(rl.Families, rl.RingTimes)
		ringTime := ""
		if rl.RingTime > 0 {
			ringTime = fmt.Sprint(rl.RingTime)
		}
		var dial string
		if rl.Order == RingSequential {
			// One step per family, in the action's order, its devices together; "|" ends each
			// step (deploy/asterisk/extensions_presenced.conf, presenced-ring), and the ring
			// times are per step.
			for _, s := range steps {
				dial += strings.Join(s, "&") + "|"
			}
			if len(times) > 0 {
				parts := make([]string, len(times))
				for i, t := range times {
					parts[i] = fmt.Sprint(t)
				}
				ringTime = strings.Join(parts, "|")
			}
		} else {
			var all []string
			for _, s := range steps {
				all = append(all, s...)
			}
			dial = strings.Join(all, "&")
		}
		db(n.ProfileFamily, ext+"/dialstring", set(dial))
		db(n.ProfileFamily, ext+"/ringmode", set(string(rl.Order)))
		db(n.ProfileFamily, ext+"/ringtime", set(ringTime))
	}

	families := map[ForwardType]string{ForwardUnconditional: n.ForwardFamily, ForwardBusy: n.BusyFamily, ForwardNoAnswer: n.NoAnswerFamily}
	for typ, to := range in.Forward {
		db(families[typ], ext, set(to))
	}
	if in.NoAnswer != nil {
		db(n.ProfileFamily, ext+"/noanswer", set(*in.NoAnswer))
	}
	compileCallerID(t, u, in, n)
	if in.Location != nil {
		db(n.ProfileFamily, ext+"/location", set(*in.Location))
	}
	compileHotDesk(d, u, in, profiles, n)
	if in.Presence != nil {
		p := *in.Presence
		t.Presence[n.PresenceProviderOf(u)] = &p
	}
	for dev, state := range in.Lamps {
		t.Devices[dev] = strings.ToUpper(state)
	}
	for key, v := range in.Variables {
		scope, name, _ := strings.Cut(key, ":")
		var val *string
		if v != nil {
			val = set(*v)
		}
		if scope == "global" {
			t.Globals[name] = val
		} else {
			t.AstDB[name] = val
		}
	}
	return d
}

// compileCallerID adds u's caller ID keys to t: PROFILE/<ext>/callerid for every phone of the
// user's and PROFILE/<ext>/callerid/<family> for the families a caller_id action named (only
// those u has a phone of, and desk, which a hot desk counts as), and, while a caller ID is set,
// the device map entries of u's phones (DeviceKey), by which the shipped dialplan finds whose
// phone, of which family, an outgoing call comes from. Without any caller_id action nothing is
// named: the keys are left alone.
func compileCallerID(t *Target, u *User, in Intent, n Naming) {
	if in.CallerID == nil && len(in.CallerIDs) == 0 {
		return
	}
	key := func(k string) string { return n.ProfileFamily + "/" + u.Extension + "/" + k }
	set := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	present := false
	if in.CallerID != nil {
		t.AstDB[key("callerid")] = set(*in.CallerID)
		present = *in.CallerID != ""
	}
	for _, f := range Families() {
		v, ok := in.CallerIDs[f]
		if !ok || (f != FamilyDesk && len(u.DevicesOf([]Family{f})) == 0) {
			continue
		}
		t.AstDB[key("callerid/"+string(f))] = set(v)
		present = present || v != ""
	}
	for _, d := range u.Devices {
		if k, ok := n.DeviceKey(d.Dial); ok {
			t.AstDB[k] = nil
			if present {
				t.AstDB[k] = ptr(DeviceEntry(u.Extension, d.Family))
			}
		}
	}
}

// compileHotDesk adds to t the device map entry of the hot desk u is bound to (a location that
// is no phone of u's own) as a claim, and releases the entries of the other hot desks u's
// profiles name, so that a binding ended by any switch is taken off.
func compileHotDesk(t *Desired, u *User, in Intent, profiles []*Profile, n Naming) {
	bound := ""
	if in.Location != nil {
		bound = *in.Location
	}
	desks := []string{bound}
	for _, p := range profiles {
		for _, a := range slices.Concat(p.OnEnter, p.OnExit) {
			if a.Kind == ActionLocation && a.Device != "" {
				desks = append(desks, a.Device)
			}
		}
	}
	mine := DeviceEntry(u.Extension, FamilyDesk)
	for _, d := range desks {
		key, ok := n.DeviceKey(d)
		if !ok || u.hasDevice(d) {
			continue
		}
		if t.Claims == nil {
			t.Claims = map[string]string{}
		}
		t.Claims[key] = mine
		if d == bound {
			t.AstDB[key] = &mine
		} else if _, named := t.AstDB[key]; !named {
			t.AstDB[key] = nil
		}
	}
}

// BoundDesk is the hot desk u is bound to in the desired state want, when u holds it (or is
// about to: it is unclaimed in have, what the PBX shows): a location that is no phone of u's
// own, whose device map entry is u's. "" when u is bound to none, or another user bound to the
// same hot desk first holds it.
func BoundDesk(want *Desired, have *Target, n Naming, u *User) string {
	loc := want.AstDB[n.ProfileFamily+"/"+u.Extension+"/location"]
	if loc == nil {
		return ""
	}
	key, ok := n.DeviceKey(*loc)
	if !ok {
		return ""
	}
	mine, claimed := want.Claims[key]
	if !claimed || want.AstDB[key] == nil {
		return ""
	}
	if have != nil {
		if h := have.AstDB[key]; h != nil && *h != mine {
			return ""
		}
	}
	return *loc
}

// hasDevice reports whether dial is one of u's phones.
func (u *User) hasDevice(dial string) bool {
	return slices.ContainsFunc(u.Devices, func(d Device) bool { return strings.EqualFold(d.Dial, dial) })
}

// withHotDesk is u with hot desk dial (when not "") among their phones, as a desk phone: the
// phones whose calls are u's (on a call, the phones' states).
func (u *User) withHotDesk(dial string) *User {
	if dial == "" {
		return u
	}
	c := *u
	c.Devices = append(slices.Clone(u.Devices), Device{Dial: dial, Family: FamilyDesk})
	return &c
}

// DialstringKey is the astdb key of the user's ring list ("PROFILE/<ext>/dialstring").
func (n Naming) DialstringKey(u *User) string {
	return n.ProfileFamily + "/" + u.Extension + "/dialstring"
}
