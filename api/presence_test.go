package api

import (
	"strings"
	"testing"
)

// TestPresenceHidesPrivateProfiles: a colleague's token sees a user in a private profile only
// as the presence state and its neutral text; the user's own token and the admin token see the
// profile, its name, info, colour and icon.
func TestPresenceHidesPrivateProfiles(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profiles/clinic", aliceToken,
		`{"name":"Oncology","colour":"purple","icon":"headset","visibility":"private","presence":"away"}`, 201, nil)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken,
		`{"profile":"clinic","info":"chemo at St. Mary, back Tuesday"}`, 200, nil)
	alice := func(token string) (presenceView, string) {
		t.Helper()
		var out presenceList
		rec := a.must(t, "GET", "/api/v1/presence", token, "", 200, &out)
		for _, u := range out.Users {
			if u.User == "alice" {
				return u, rec.Body.String()
			}
		}
		t.Fatalf("alice missing: %s", rec.Body)
		return presenceView{}, ""
	}
	got, body := alice(bobToken)
	if got.Presence != "away" || got.Label != "Away" || got.Since.IsZero() || got.Profile != "" || got.Info != "" ||
		got.Colour != "" || got.Icon != "" || got.Private {
		t.Errorf("bob sees alice as %+v, want only the presence state and its neutral text", got)
	}
	for _, secret := range []string{"clinic", "Oncology", "chemo", "purple", "headset", "private"} {
		if strings.Contains(body, secret) {
			t.Errorf("bob's answer shows %q: %s", secret, body)
		}
	}
	for _, token := range []string{aliceToken, adminToken} {
		got, _ := alice(token)
		if got.Profile != "clinic" || got.Label != "Oncology" || got.Info != "chemo at St. Mary, back Tuesday" ||
			got.Colour != "purple" || got.Icon != "headset" || got.Presence != "away" || !got.Private {
			t.Errorf("%s sees alice as %+v, want everything", token, got)
		}
	}
}
