package icon

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestCheck(t *testing.T) {
	other := &presence.ValidationError{Problems: []string{"profile.name: required"}}
	for _, tc := range []struct {
		name, icon string
		err        error
		want       []string // problems; nil: err returned as it is
	}{
		{"known", "lunch", nil, nil},
		{"none", "", nil, nil},
		{"known beside other problems", "moon", other, []string{"profile.name: required"}},
		{"unknown", "rocket", nil, []string{`profile.icon: "rocket" is not one of the icons: available, away, calendar`}},
		{"unknown beside other problems", "rocket", other, []string{"profile.name: required", `profile.icon: "rocket"`}},
		{"replaces the engine's problem at icon", "Rocket",
			&presence.ValidationError{Problems: []string{`profile.icon: "Rocket" must be 1-40 lower-case letters`}},
			[]string{`profile.icon: "Rocket" is not one of the icons`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(&presence.Profile{Icon: tc.icon}, tc.err)
			if tc.want == nil && tc.err == nil {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			var ve *presence.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != len(tc.want) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(ve.Problems[i], w) {
					t.Errorf("problem %d: %q, want %q…", i, ve.Problems[i], w)
				}
			}
		})
	}
	if other.Problems[0] != "profile.name: required" || len(other.Problems) != 1 {
		t.Errorf("Check changed the error it was given: %v", other)
	}
	notValidation := errors.New("store down")
	if err := Check(&presence.Profile{Icon: "rocket"}, notValidation); err != notValidation {
		t.Errorf("another error: %v", err)
	}
}

func TestUnknownAndNames(t *testing.T) {
	got := Unknown([]presence.Profile{{ID: "a", Icon: "lunch"}, {ID: "b", Icon: "rocket"}, {ID: "c"}})
	if len(got) != 1 || !strings.HasPrefix(got[0], `profiles[1].icon: the web app has no icon "rocket"`) {
		t.Errorf("Unknown = %q", got)
	}
	names := Names()
	if len(names) != 15 || !slices.IsSorted(names) || !Known("plane") || Known("") {
		t.Errorf("Names = %v", names)
	}
	names[0] = "changed"
	if Names()[0] == "changed" {
		t.Error("Names shares its slice")
	}
	if s, ok := Outline("moon"); !ok || !strings.HasPrefix(s, "<path") {
		t.Errorf("Outline(moon) = %q %v", s, ok)
	}
}
