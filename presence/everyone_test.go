package presence_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestEveryoneHidesPrivateProfilesFromColleagues: a colleague sees a user in a private profile
// (personal or system-wide) only as the presence state and its neutral text; the user and an
// admin see everything; a public profile shows to everyone.
func TestEveryoneHidesPrivateProfilesFromColleagues(t *testing.T) {
	ctx := context.Background()
	us := users(3)
	sick := presence.Profile{ID: "sick", Name: "Sick leave", Colour: "grey", Icon: "bed", Visibility: presence.VisibilityPrivate,
		Activation: "7", Presence: "xa"}
	e, _, _ := newTestEngine(t, us, []presence.Profile{sick})
	alice, bob, carol := us[0].ID, us[1].ID, us[2].ID
	clinic := &presence.Profile{ID: "clinic", Name: "Oncology", Colour: "purple", Icon: "hospital", Visibility: presence.VisibilityPrivate,
		Presence: "away"}
	must(t, e.SaveProfile(ctx, alice, clinic))
	_, err := e.Switch(ctx, presence.SwitchRequest{User: alice, Profile: "clinic", Info: "chemo at St. Mary, back Tuesday", Source: presence.SourceAPI})
	must(t, err)
	_, err = e.Switch(ctx, presence.SwitchRequest{User: bob, Profile: "sick", Info: "flu", Source: presence.SourceAPI})
	must(t, err)
	_, err = e.Switch(ctx, presence.SwitchRequest{User: carol, Profile: presence.ProfileDND, Info: "until 4pm", Source: presence.SourceAPI})
	must(t, err)

	entry := func(t *testing.T, viewer presence.EveryoneOptions, id presence.UserID) presence.PresenceEntry {
		t.Helper()
		all, err := e.Everyone(ctx, viewer)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			if e.User == id {
				return e
			}
		}
		t.Fatalf("%s missing", id)
		return presence.PresenceEntry{}
	}
	for _, tc := range []struct {
		name    string
		viewer  presence.EveryoneOptions
		of      presence.UserID
		want    presence.PresenceEntry
		secrets []string
	}{
		{"colleague sees a private personal profile", presence.EveryoneOptions{Viewer: carol}, alice,
			presence.PresenceEntry{Presence: "away", Label: "Away"}, []string{"clinic", "Oncology", "chemo", "purple", "hospital"}},
		{"colleague sees a private system-wide profile", presence.EveryoneOptions{Viewer: alice}, bob,
			presence.PresenceEntry{Presence: "xa", Label: "Extended away"}, []string{"sick", "Sick leave", "flu", "grey", "bed"}},
		{"no user, no admin", presence.EveryoneOptions{}, alice,
			presence.PresenceEntry{Presence: "away", Label: "Away"}, []string{"clinic", "Oncology", "chemo"}},
		{"the user themselves", presence.EveryoneOptions{Viewer: alice}, alice,
			presence.PresenceEntry{Profile: "clinic", Label: "Oncology", Colour: "purple", Icon: "hospital", Presence: "away",
				Info: "chemo at St. Mary, back Tuesday", Private: true}, nil},
		{"an admin", presence.EveryoneOptions{Admin: true}, bob,
			presence.PresenceEntry{Profile: "sick", Label: "Sick leave", Colour: "grey", Icon: "bed", Presence: "xa", Info: "flu",
				Private: true}, nil},
		{"colleague sees a public profile", presence.EveryoneOptions{Viewer: alice}, carol,
			presence.PresenceEntry{Profile: presence.ProfileDND, Label: "Do not disturb", Colour: "red", Presence: "dnd", Info: "until 4pm"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := entry(t, tc.viewer, tc.of)
			if got.Since.IsZero() || got.Extension == "" {
				t.Errorf("since %v, extension %q", got.Since, got.Extension)
			}
			got.User, got.Name, got.Extension, got.Since = "", "", "", time.Time{}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			b, _ := json.Marshal(got)
			for _, s := range tc.secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("%s shows %q: %s", tc.of, s, b)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
