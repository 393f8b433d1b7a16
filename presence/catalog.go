package presence

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// The profiles every user has even when the configuration defines none.
const (
	ProfileAvailable = "available"
	ProfileDND       = "dnd"
)

// Catalog is the validated set of users and system-wide profiles, with the rules for personal
// profiles and the limits.
type Catalog struct {
	Users    []*User
	Profiles []*Profile // system-wide, in configuration order

	users    map[UserID]*User
	profiles map[string]*Profile
	queues   map[string]bool
	rules    PersonalRules
	limits   Limits
	hotDesks []string
	// phones are the users' phones that place calls as themselves (CallerDevice), lower
	// case, each one user's.
	phones map[string]*User
}

// CatalogConfig is what a Catalog is made of.
type CatalogConfig struct {
	Users    []User
	Profiles []Profile // system-wide
	// Personal is what users may put into their own profiles.
	Personal PersonalRules
	// Limits; zero fields take DefaultLimits.
	Limits Limits
	// HotDesks are the dial strings of shared phones any user may bind to with a location
	// action in a personal profile (besides their own devices).
	HotDesks []string
	// Naming is how presenced names its state in Asterisk; zero means DefaultNaming. No
	// personal variable or lamp pattern may reach those names.
	Naming Naming
}

// NewCatalogFrom validates users, system-wide profiles, the personal-profile rules and the
// limits, and adds the "available" and "dnd" profiles when the configuration lacks them. The
// error names every offending field, e.g. profiles[2].on_enter[0]: unknown action "queue_logon".
func NewCatalogFrom(cfg CatalogConfig) (*Catalog, error) {
	users, profiles := cfg.Users, cfg.Profiles
	c := &Catalog{users: map[UserID]*User{}, profiles: map[string]*Profile{}, queues: map[string]bool{},
		rules: cfg.Personal, limits: cfg.Limits, phones: map[string]*User{}}
	var p problems
	def := DefaultLimits()
	for _, l := range []struct {
		key      string
		v        *int
		def, max int
	}{
		{"limits.info_length", &c.limits.InfoLength, def.InfoLength, MaxInfoBytes},
		{"limits.personal_profiles", &c.limits.PersonalProfiles, def.PersonalProfiles, 1000},
		{"limits.actions", &c.limits.Actions, def.Actions, 200},
		{"limits.external_triggers", &c.limits.ExternalTriggers, def.ExternalTriggers, 1000},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
		if *l.v < 1 || *l.v > l.max {
			p.add(l.key, "%d is not between 1 and %d", *l.v, l.max)
		}
	}
	naming := cfg.Naming
	if naming == (Naming{}) {
		naming = DefaultNaming()
	}
	c.rules.validate(&p, naming)
	for i, d := range cfg.HotDesks {
		if !dialPattern.MatchString(d) || len(d) > 200 {
			p.add(fmt.Sprintf("hot_desks[%d]", i), "%q is not a dial string such as PJSIP/hotdesk-3", d)
		}
	}
	c.hotDesks = slices.Clone(cfg.HotDesks)
	extensions := map[string]UserID{}
	tokens := map[string]UserID{}
	// Users share a few time zones: each is loaded (a read of the zone database) once.
	zones := ZoneCache{}
	for i := range users {
		u := users[i]
		path := fmt.Sprintf("users[%d]", i)
		if u.ID != "" {
			path = fmt.Sprintf("users[%d] (%s)", i, u.ID)
		}
		validateUser(&p, path, &u, zones)
		if _, dup := c.users[u.ID]; dup && u.ID != "" {
			p.add(path+".id", "%q is used by another user", u.ID)
		}
		if other, dup := extensions[u.Extension]; dup && u.Extension != "" {
			p.add(path+".extension", "%q is already the extension of user %q", u.Extension, other)
		}
		if other, dup := tokens[u.Token]; dup && u.Token != "" {
			key := path + ".token"
			if u.TokenFile != "" {
				key = path + ".token_file"
			}
			p.add(key, "is already the token of user %q", other)
		}
		extensions[u.Extension] = u.ID
		tokens[u.Token] = u.ID
		c.addPhones(&p, path, &u)
		c.users[u.ID] = &u
		c.Users = append(c.Users, &u)
		for _, q := range u.Queues {
			c.queues[q.Name] = true
		}
	}
	for i, d := range c.hotDesks {
		if o, ok := c.phones[strings.ToLower(d)]; ok {
			p.add(fmt.Sprintf("hot_desks[%d]", i), "%q is a device of user %q, not a shared phone", d, o.ID)
		}
	}
	activations := map[string]string{}
	for i := range profiles {
		pr := profiles[i]
		path := fmt.Sprintf("profiles[%d]", i)
		if pr.ID != "" {
			path = fmt.Sprintf("profiles[%d] (%s)", i, pr.ID)
		}
		pr.Owner = ""
		c.validateProfile(&p, path, &pr)
		if _, dup := c.profiles[pr.ID]; dup && pr.ID != "" {
			p.add(path+".id", "%q is used by another profile", pr.ID)
		}
		if other, dup := activations[pr.Activation]; dup && pr.Activation != "" {
			p.add(path+".activation", "%q is already the activation number of profile %q", pr.Activation, other)
		}
		activations[pr.Activation] = pr.ID
		c.profiles[pr.ID] = &pr
		c.Profiles = append(c.Profiles, &pr)
	}
	for _, def := range defaultProfiles() {
		if _, ok := c.profiles[def.ID]; ok {
			continue
		}
		if _, taken := activations[def.Activation]; taken {
			def.Activation = "" // the admin gave the number to another profile
		}
		d := def
		c.profiles[d.ID] = &d
		c.Profiles = append(c.Profiles, &d)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// addPhones records u's phones that place calls as themselves (CallerDevice): each is one
// user's, as a call from it is that user's call (outgoing caller ID, feature codes, calls in
// progress). Numbers through a trunk and Local channels may be listed by several users.
func (c *Catalog) addPhones(p *problems, path string, u *User) {
	for i, d := range u.Devices {
		if !CallerDevice(d.Dial) {
			continue
		}
		k := strings.ToLower(d.Dial)
		if o, ok := c.phones[k]; ok && o.ID != u.ID {
			p.add(fmt.Sprintf("%s.devices[%d].dial", path, i),
				"%q is already a device of user %q: a phone is one user's (calls from it are that user's: caller ID, feature codes, calls in progress)", d.Dial, o.ID)
			continue
		}
		c.phones[k] = u
	}
}

// PhoneUser returns the user whose phone dial is (case-insensitive), if it is a user's phone
// that places calls as itself (CallerDevice).
func (c *Catalog) PhoneUser(dial string) (*User, bool) {
	u, ok := c.phones[strings.ToLower(dial)]
	return u, ok
}

// HotDesks lists the phones a user may be bound to by a location action that are no user's
// own phones: the hot_desks entries and the locations the system-wide profiles name, those
// that place calls as themselves (CallerDevice). Their state tells whether a user bound to one
// is on a call.
func (c *Catalog) HotDesks() []string {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		k := strings.ToLower(d)
		if _, own := c.phones[k]; !own && !seen[k] && CallerDevice(d) {
			seen[k] = true
			out = append(out, d)
		}
	}
	for _, d := range c.hotDesks {
		add(d)
	}
	for _, pr := range c.Profiles {
		for _, a := range slices.Concat(pr.OnEnter, pr.OnExit) {
			if a.Kind == ActionLocation && a.Device != "" {
				add(a.Device)
			}
		}
	}
	return out
}

// IsHotDesk reports whether dial (case-insensitive) is one of HotDesks: a phone a user may be
// bound to. A personal profile may name no other (CheckPersonalAction), and what it named under
// looser rules no longer runs, so no user is bound to a phone that is not one.
func (c *Catalog) IsHotDesk(dial string) bool {
	return slices.ContainsFunc(c.HotDesks(), func(d string) bool { return strings.EqualFold(d, dial) })
}

// defaultProfiles are "available" and "dnd" as every user gets them when the configuration
// does not define them.
func defaultProfiles() []Profile {
	off := false
	return []Profile{
		{ID: ProfileAvailable, Name: "Available", Colour: "green", Activation: "1", Presence: "available",
			OnEnter: []Action{
				{Kind: ActionQueueLogin, Queues: QueueSelector{"all"}},
				{Kind: ActionQueueUnpause, Queues: QueueSelector{"all"}},
				{Kind: ActionDND, On: &off},
			}},
		{ID: ProfileDND, Name: "Do not disturb", Colour: "red", Activation: "2", Presence: "dnd",
			OnEnter: []Action{{Kind: ActionDND}},
			OnExit:  []Action{{Kind: ActionDND, On: &off}}},
	}
}

// User returns the user with the given ID.
func (c *Catalog) User(id UserID) (*User, bool) {
	u, ok := c.users[id]
	return u, ok
}

// UserByExtension returns the user whose primary extension is ext.
func (c *Catalog) UserByExtension(ext string) (*User, bool) {
	for _, u := range c.Users {
		if u.Extension == ext {
			return u, true
		}
	}
	return nil, false
}

// Profile returns the system-wide profile with the given ID.
func (c *Catalog) Profile(id string) (*Profile, bool) {
	p, ok := c.profiles[id]
	return p, ok
}

// HomeProfile is the profile user u returns to when nothing else says where: after the
// number of the active profile is dialled again (feature codes), at the end of a timed
// profile with no profile before it (trigger), when DND is turned off on a phone and the
// profile before would leave it on (the DND key). The first that is set wins:
//
//  1. the user's own default_profile (u.DefaultProfile);
//  2. the first non-empty fallback, which the caller passes from its own configuration:
//     feature_codes.default_profile for feature codes; dnd_key.default_profile, else
//     feature_codes.default_profile, for the DND key; none for a timed profile;
//  3. ProfileAvailable.
//
// u may be nil (a user no longer in the catalog): then the fallbacks decide.
func (c *Catalog) HomeProfile(u *User, fallbacks ...string) string {
	if u != nil && u.DefaultProfile != "" {
		return u.DefaultProfile
	}
	return cmp.Or(cmp.Or(fallbacks...), ProfileAvailable)
}

// KnownQueue reports whether some user may join queue q.
func (c *Catalog) KnownQueue(q string) bool { return c.queues[q] }
