package presence

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// The caller ID per family, the device map and the hot-desk claims (README.md, "Actions":
// caller_id, location; docs/asterisk.md §3).

// astdbOf is the astdb part of t as "key=value" ("key=<nil>" for must-not-exist), sorted.
func astdbOf(t *Target, prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(t.AstDB)) {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		v := "<nil>"
		if p := t.AstDB[k]; p != nil {
			v = *p
		}
		out = append(out, k+"="+v)
	}
	return out
}

func TestCompileCallerIDByFamily(t *testing.T) {
	u := alice() // desk PJSIP/1001, mobile PJSIP/1001-mobile, softphone PJSIP/1001-soft
	n := DefaultNaming()
	all := func(v string) Action { return Action{Kind: ActionCallerID, Value: v} }
	fam := func(v string, f ...Family) Action { return Action{Kind: ActionCallerID, Value: v, Families: f} }
	offFor := func(f ...Family) Action { return Action{Kind: ActionCallerID, On: off(), Families: f} }
	for _, tc := range []struct {
		name    string
		actions [][]Action // one profile per chain, entered in order
		callers []string   // PROFILE/1001/callerid...
		devices []string   // the device map
	}{
		{"no caller_id action: nothing named", [][]Action{{{Kind: ActionDND}}}, nil, nil},
		{"every phone", [][]Action{{all("+493012345")}},
			[]string{"PROFILE/1001/callerid=+493012345", "PROFILE/1001/callerid/desk=<nil>",
				"PROFILE/1001/callerid/mobile=<nil>", "PROFILE/1001/callerid/softphone=<nil>"},
			[]string{"PROFILE/PJSIP:1001=1001:desk", "PROFILE/PJSIP:1001-mobile=1001:mobile", "PROFILE/PJSIP:1001-soft=1001:softphone"}},
		{"the mobile only; dect has no phone of alice's", [][]Action{{fam("+4917012345678", FamilyMobile, FamilyDECT)}},
			[]string{"PROFILE/1001/callerid/mobile=+4917012345678"},
			[]string{"PROFILE/PJSIP:1001=1001:desk", "PROFILE/PJSIP:1001-mobile=1001:mobile", "PROFILE/PJSIP:1001-soft=1001:softphone"}},
		{"every phone, then the mobile", [][]Action{{all("1001")}, {fam("+4917012345678", FamilyMobile)}},
			[]string{"PROFILE/1001/callerid=1001", "PROFILE/1001/callerid/desk=<nil>",
				"PROFILE/1001/callerid/mobile=+4917012345678", "PROFILE/1001/callerid/softphone=<nil>"},
			[]string{"PROFILE/PJSIP:1001=1001:desk", "PROFILE/PJSIP:1001-mobile=1001:mobile", "PROFILE/PJSIP:1001-soft=1001:softphone"}},
		{"the mobile, then every phone: the mobile's gives way", [][]Action{{fam("+4917012345678", FamilyMobile)}, {all("1001")}},
			[]string{"PROFILE/1001/callerid=1001", "PROFILE/1001/callerid/desk=<nil>",
				"PROFILE/1001/callerid/mobile=<nil>", "PROFILE/1001/callerid/softphone=<nil>"},
			[]string{"PROFILE/PJSIP:1001=1001:desk", "PROFILE/PJSIP:1001-mobile=1001:mobile", "PROFILE/PJSIP:1001-soft=1001:softphone"}},
		{"the mobile's off again: no caller ID, no device map", [][]Action{{fam("+4917012345678", FamilyMobile)}, {offFor(FamilyMobile)}},
			[]string{"PROFILE/1001/callerid/mobile=<nil>"},
			[]string{"PROFILE/PJSIP:1001=<nil>", "PROFILE/PJSIP:1001-mobile=<nil>", "PROFILE/PJSIP:1001-soft=<nil>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Profile
			for i, chain := range tc.actions {
				ps = append(ps, &Profile{ID: string(rune('a' + i)), OnEnter: chain})
			}
			got := Compile(&u, entered(&u, "", ps...), Active{}, nil, n)
			if c := astdbOf(&got.Target, "PROFILE/1001/callerid"); !slices.Equal(c, tc.callers) {
				t.Errorf("caller ID keys:\n got %q\nwant %q", c, tc.callers)
			}
			if d := astdbOf(&got.Target, "PROFILE/PJSIP:"); !slices.Equal(d, tc.devices) {
				t.Errorf("device map:\n got %q\nwant %q", d, tc.devices)
			}
		})
	}
}

// A phone that places no calls as itself (a Local channel, a number through a trunk) has no
// device map entry.
func TestDeviceKey(t *testing.T) {
	n := DefaultNaming()
	for _, tc := range []struct {
		dial, key string
	}{
		{"PJSIP/1001-mobile", "PROFILE/PJSIP:1001-mobile"},
		{"IAX2/desk", "PROFILE/IAX2:desk"},
		{"Local/1001@lab-sink", ""},
		{"local/1001@x/n", ""},
		{"PJSIP/+4930123@trunk", ""},
		{"PJSIP/1001/sip:1001@host", ""},
		{"PJSIP", ""},
	} {
		key, ok := n.DeviceKey(tc.dial)
		if key != tc.key || ok != (tc.key != "") {
			t.Errorf("DeviceKey(%q) = %q, %v, want %q", tc.dial, key, ok, tc.key)
		}
		if ok {
			if d, ok := n.deviceOfKey(key); !ok || d != tc.dial {
				t.Errorf("deviceOfKey(%q) = %q, %v, want %q", key, d, ok, tc.dial)
			}
		}
	}
	for _, v := range []string{"1001:desk", "1001:mobile"} {
		if ext, f, ok := ParseDeviceEntry(v); !ok || DeviceEntry(ext, f) != v {
			t.Errorf("ParseDeviceEntry(%q) = %q, %q, %v", v, ext, f, ok)
		}
	}
	for _, v := range []string{"", "1001", "x:desk", "1001:pager", "1001:desk:x"} {
		if _, _, ok := ParseDeviceEntry(v); ok {
			t.Errorf("ParseDeviceEntry(%q) accepted", v)
		}
	}
}

// A location that is no phone of the user's own is a hot desk: its device map entry is claimed
// while bound, released when the binding ends (every hot desk the user's profiles name is
// named), and the first user bound keeps it.
func TestHotDeskClaims(t *testing.T) {
	n := DefaultNaming()
	u := alice()
	bind := func(d string) *Profile {
		return &Profile{ID: "at-" + d, OnEnter: []Action{{Kind: ActionLocation, Device: d}}}
	}
	unbind := &Profile{ID: "home", OnEnter: []Action{{Kind: ActionLocation, On: off()}}}
	own := bind("PJSIP/1001-soft")
	desk1, desk2, local := bind("PJSIP/hotdesk-1"), bind("PJSIP/hotdesk-2"), bind("Local/5@lab-sink")
	profiles := []*Profile{own, desk1, desk2, local, unbind}
	compile := func(steps ...*Profile) *Desired {
		return Compile(&u, entered(&u, "", steps...), Active{}, profiles, n)
	}
	k1, k2 := "PROFILE/PJSIP:hotdesk-1", "PROFILE/PJSIP:hotdesk-2"
	mine := "1001:desk"

	bound := compile(desk1)
	if got := astdbOf(&bound.Target, "PROFILE/PJSIP:"); !slices.Equal(got, []string{k1 + "=" + mine, k2 + "=<nil>"}) {
		t.Errorf("bound to hotdesk-1: device map %q", got)
	}
	if bound.Claims[k1] != mine || bound.Claims[k2] != mine || len(bound.Claims) != 2 {
		t.Errorf("claims %v, want hotdesk-1 and hotdesk-2 as alice's (no claim on her own softphone or a Local channel)", bound.Claims)
	}
	if got := compile(desk1, own); got.AstDB[k1] != nil || got.Claims[k1] != mine {
		t.Errorf("bound to her own softphone: hotdesk-1 %v, want released", got.AstDB[k1])
	}
	if got := compile(desk1, unbind); got.AstDB[k1] != nil {
		t.Errorf("location off: hotdesk-1 %v, want released", got.AstDB[k1])
	}

	bob := strp("1002:desk")
	for _, tc := range []struct {
		name string
		want *Desired
		have *string // hotdesk-1's entry on the PBX
		ops  []string
		desk string // BoundDesk
	}{
		{"unclaimed: alice claims it", bound, nil, []string{`db_put ` + k1 + `="1001:desk"`}, "PJSIP/hotdesk-1"},
		{"alice holds it", bound, strp(mine), nil, "PJSIP/hotdesk-1"},
		{"bob bound first and holds it: left alone", bound, bob, nil, ""},
		{"released while alice holds it", compile(desk1, unbind), strp(mine), []string{"db_del " + k1}, ""},
		{"released while bob holds it: left alone", compile(desk1, unbind), bob, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := NewTarget()
			for k := range tc.want.AstDB {
				have.AstDB[k] = tc.want.AstDB[k]
			}
			have.AstDB[k1], have.AstDB[k2] = tc.have, nil
			var ops []string
			for _, op := range Plan(tc.want, have) {
				ops = append(ops, op.String())
			}
			if !slices.Equal(ops, tc.ops) {
				t.Errorf("Plan = %q, want %q", ops, tc.ops)
			}
			if d := BoundDesk(tc.want, have, n, &u); d != tc.desk {
				t.Errorf("BoundDesk = %q, want %q", d, tc.desk)
			}
		})
	}

	// A reload that takes alice away releases her claim; one that changes her extension
	// releases the old entry, which the new one claims anew.
	if td := Teardown(bound, nil, "INVALID"); td.AstDB[k1] != nil || td.Claims[k1] != mine {
		t.Errorf("teardown of a removed user: %v %v, want hotdesk-1 released", td.AstDB[k1], td.Claims[k1])
	}
	moved := u
	moved.Extension = "1005"
	keep := Compile(&moved, entered(&moved, "", desk1), Active{}, profiles, n)
	if td := Teardown(bound, keep, "INVALID"); td.AstDB[k1] != nil || td.Claims[k1] != mine {
		t.Errorf("teardown after a new extension: %v %v, want 1001's entry released", td.AstDB[k1], td.Claims[k1])
	}
	if td := Teardown(bound, bound, "INVALID"); len(td.AstDB) != 0 {
		t.Errorf("teardown with nothing changed: %v", td.AstDB)
	}
}

func TestCatalogPhonesAreOneUsers(t *testing.T) {
	bob := User{ID: "bob", Extension: "1002", Devices: []Device{{Dial: "PJSIP/1002", Family: FamilyDesk},
		{Dial: "Local/9@lab-sink", Family: FamilyExternal}, {Dial: "PJSIP/+4930@trunk", Family: FamilyMobile}}}
	shared := bob
	shared.Devices = append(slices.Clone(bob.Devices), Device{Dial: "pjsip/1001-MOBILE", Family: FamilyMobile})
	for _, tc := range []struct {
		name string
		cfg  CatalogConfig
		want string
	}{
		{"a phone listed twice", CatalogConfig{Users: []User{alice(), shared}},
			`users[1] (bob).devices[3].dial: "pjsip/1001-MOBILE" is already a device of user "alice"`},
		{"a hot desk that is a user's phone", CatalogConfig{Users: []User{alice()}, HotDesks: []string{"PJSIP/1001"}},
			`hot_desks[0]: "PJSIP/1001" is a device of user "alice", not a shared phone`},
		{"caller_id families", CatalogConfig{Profiles: []Profile{{ID: "x", OnEnter: []Action{
			{Kind: ActionCallerID, Value: "1", Families: []Family{"pager", FamilyMobile, FamilyMobile}}}}}},
			`profiles[0] (x).on_enter[0].families: "pager" is not one of desk, softphone, dect, mobile, external; profiles[0] (x).on_enter[0].families: "mobile" listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCatalogFrom(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Numbers through a trunk and Local channels may be shared; the catalog knows whose phone is
	// whose, and which hot desks a location may bind.
	other := bob
	other.ID, other.Extension = "carol", "1003"
	other.Devices = []Device{{Dial: "PJSIP/1003", Family: FamilyDesk}, bob.Devices[1], bob.Devices[2]}
	cat, err := NewCatalogFrom(CatalogConfig{Users: []User{alice(), bob, other}, HotDesks: []string{"PJSIP/hotdesk-1", "Local/7@x"},
		Profiles: []Profile{{ID: "reception", OnEnter: []Action{{Kind: ActionLocation, Device: "PJSIP/reception"}}},
			{ID: "odd", OnEnter: []Action{{Kind: ActionLocation, Device: "PJSIP/1002"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := cat.PhoneUser("PJSIP/1001-Mobile"); !ok || u.ID != "alice" {
		t.Errorf("PhoneUser(PJSIP/1001-Mobile) = %v, %v", u, ok)
	}
	if _, ok := cat.PhoneUser("PJSIP/+4930@trunk"); ok {
		t.Error("a number through a trunk is nobody's phone")
	}
	if got := cat.HotDesks(); !slices.Equal(got, []string{"PJSIP/hotdesk-1", "PJSIP/reception"}) {
		t.Errorf("HotDesks() = %q", got)
	}
	// A location on another user's phone rings it but does not claim it.
	odd, _ := cat.Profile("odd")
	a, _ := cat.User("alice")
	want := Compile(a, entered(a, "", odd), Active{}, cat.Profiles, DefaultNaming())
	if _, claimed := want.Claims["PROFILE/PJSIP:1002"]; !claimed {
		t.Fatal("Compile does not know the catalog: it claims PJSIP/1002")
	}
	cat.unclaimPhones(want, DefaultNaming())
	if _, claimed := want.Claims["PROFILE/PJSIP:1002"]; claimed || want.AstDB["PROFILE/PJSIP:1002"] != nil {
		t.Errorf("bob's phone still claimed for alice: %v", want.Claims)
	}
	if want.AstDB["PROFILE/1001/location"] == nil || *want.AstDB["PROFILE/1001/location"] != "PJSIP/1002" {
		t.Errorf("the location itself is gone: %v", want.AstDB["PROFILE/1001/location"])
	}
}

// A personal profile's caller ID per family is checked like one for every phone: only the
// user's own numbers, the field named.
func TestPersonalCallerIDPerFamily(t *testing.T) {
	cfg := openRules()
	cfg.Users = []User{aliceWithCallerIDs(), bob()}
	cat, err := NewCatalogFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := cat.User("alice")
	for _, tc := range []struct {
		value string
		want  string
	}{
		{"+4930123451001", ""},
		{"1001", ""},
		{`"Alice" <+4930123451001>`, ""},
		{"+4917099999999", `on_enter[0].value: "+4917099999999" is not a caller ID assigned to you (1001, +4930123451001)`},
		{"1002", `on_enter[0].value: "1002" is not a caller ID assigned to you`},
	} {
		p := &Profile{ID: "mobile", OnEnter: []Action{{Kind: ActionCallerID, Value: tc.value, Families: []Family{FamilyMobile}}}}
		err := cat.ValidateProfile(u, p, nil)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", tc.value, err, tc.want)
		}
	}
}
