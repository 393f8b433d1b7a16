package presence

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzPersonalProfile feeds arbitrary personal profiles (as the API decodes them) to the
// validation. Whatever it is, validation does not panic; and a profile it accepts compiles, for
// its owner, into PBX state that is the owner's own and that Asterisk can take: no other user's
// keys or lamps, no global, no value over AMI's line, no control character.
func FuzzPersonalProfile(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"name":"Home","on_enter":[{"action":"followme","families":["mobile"]}]}`,
		`{"on_enter":[{"action":"variable","name":"CF/1002","value":"8666"}]}`,
		`{"on_enter":[{"action":"variable","name":"PROFILE/1001/var/x","value":"1"}]}`,
		`{"on_enter":[{"action":"variable","scope":"global","name":"PRESENCED_APP","value":"x"}]}`,
		`{"on_enter":[{"action":"lamp","device":"Custom:USER1001-a","state":"BUSY"}]}`,
		`{"on_enter":[{"action":"lamp","device":"Custom:DND1002","state":"busy"}]}`,
		`{"on_enter":[{"action":"location","device":"Local/8999@lab-sink/n"}]}`,
		`{"on_enter":[{"action":"location","device":"PJSIP/hotdesk-1"}]}`,
		`{"on_enter":[{"action":"caller_id","value":"\"Alice\" <+4930123451001>"}]}`,
		`{"on_enter":[{"action":"caller_id","value":"\"Carol\" <1003>"}]}`,
		`{"on_enter":[{"action":"forward","type":"busy","to":"*552"}]}`,
		`{"on_enter":[{"action":"no_answer","to":"voicemail"}],"on_exit":[{"action":"no_answer","on":false}]}`,
		`{"visibility":"private","presence":"away","on_enter":[{"action":"presence","message":"a, b"}]}`,
		`{"on_enter":[{"action":"queue_pause","queues":["support","billing"],"reason":"x\r\ny"}]}`,
		`{"colour":"#fff","icon":"coffee","on_enter":[{"action":"dnd","disabled":true}]}`,
	} {
		f.Add([]byte(seed), "info")
	}
	cfg := openRules()
	cfg.Users = []User{aliceWithCallerIDs(), bob()}
	cat, err := NewCatalogFrom(cfg)
	if err != nil {
		f.Fatal(err)
	}
	u, _ := cat.User("alice")
	n := DefaultNaming()
	own := ownedKeys(n, u.Extension)
	f.Fuzz(func(t *testing.T, body []byte, info string) {
		var p Profile
		if json.Unmarshal(body, &p) != nil {
			return
		}
		p.ID = "fuzz"
		p.Owner = ""
		if cat.ValidateProfile(u, &p, nil) != nil {
			return
		}
		p.Owner = u.ID
		if cat.ValidateInfo(info) != nil {
			info = ""
		}
		profiles := append(append([]*Profile{}, cat.Profiles...), &p)
		steps := []Step{{Profile: ProfileAvailable}, {Profile: ProfileAvailable, Exit: true, Info: info}, {Profile: p.ID, Info: info},
			{Profile: p.ID, Exit: true}, {Profile: ProfileDND}}
		for i := range steps {
			in := FoldSteps(u, steps[:i+1], profiles, func(pr *Profile, a *Action) bool {
				return !pr.Personal() || cat.CheckPersonalAction(u, *a) == nil
			})
			want := Compile(u, in, Active{Profile: FindProfile(profiles, steps[i].Profile), Info: info}, profiles, n)
			for k, v := range want.AstDB {
				if d, ok := n.deviceOfKey(k); ok {
					// The device map: alice's own phones, and hot desks only as claims.
					_, claim := want.Claims[k]
					mine := u.hasDevice(d) || (claim && slices.Contains(cat.hotDesks, d))
					if !mine || (v != nil && !strings.HasPrefix(*v, "1001:")) {
						t.Fatalf("accepted profile %s compiles to device map entry %s=%v, not alice's", body, k, v)
					}
					continue
				}
				if !isOwnKey(k, own.astdb) && !strings.HasPrefix(k, "PROFILE/1001/var/") {
					t.Fatalf("accepted profile %s compiles to astdb %s outside alice's keys", body, k)
				}
				if v != nil && (len(*v) > MaxAstDBValue || badText(*v)) {
					t.Fatalf("accepted profile %s compiles to a value Asterisk cannot take: %s=%q", body, k, *v)
				}
			}
			if len(want.Globals) > 0 {
				t.Fatalf("accepted profile %s compiles to globals %v", body, want.Globals)
			}
			for dev := range want.Devices {
				if !strings.HasPrefix(dev, "Custom:USER1001-") && dev != n.DNDLampOf(u) && !strings.HasPrefix(dev, "Custom:PROFILE1001-") {
					t.Fatalf("accepted profile %s compiles to lamp %s, not alice's", body, dev)
				}
			}
			for prov, pv := range want.Presence {
				if prov != n.PresenceProviderOf(u) || (pv != nil && (len(pv.Message) > MaxPresenceMessage || badText(pv.Message))) {
					t.Fatalf("accepted profile %s compiles to presence %s %+v", body, prov, pv)
				}
				if p.Visibility == VisibilityPrivate && i == 2 && pv != nil && pv.Message != PresenceLabel(pv.State) {
					t.Fatalf("private profile %s shows %q on the phones", body, pv.Message)
				}
			}
		}
	})
}

func isOwnKey(k string, own []string) bool {
	for _, o := range own {
		if k == o {
			return true
		}
	}
	return false
}
