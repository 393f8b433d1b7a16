package featurecode

import (
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    request
		wantErr string
	}{
		{args: []string{"activate", "3", "1001"}, want: request{mode: modeActivate, number: "3", caller: "1001"}},
		{args: []string{"activate", "12", ""}, want: request{mode: modeActivate, number: "12"}},
		{args: []string{"activate", "3*1003", "1001"}, want: request{mode: modeActivate, number: "3", ext: "1003", caller: "1001"}},
		{args: []string{"menu", "", "1001"}, want: request{mode: modeMenu, caller: "1001"}},
		{args: []string{"menu"}, want: request{mode: modeMenu}},
		{args: nil, wantErr: "no arguments"},
		{args: []string{"activate", "", "1001"}, wantErr: "not digits"},
		{args: []string{"activate", "3*", "1001"}, wantErr: "extension"},
		{args: []string{"activate", "3*10a", "1001"}, wantErr: "extension"},
		{args: []string{"activate", "*1003", "1001"}, wantErr: "not digits"},
		{args: []string{"menu", "4", "1001"}, wantErr: "menu takes no number"},
		{args: []string{"dance", "4", "1001"}, wantErr: "unknown mode"},
	} {
		got, err := parseArgs(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseArgs(%q) error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestSayDigits(t *testing.T) {
	if got, want := sayDigits("12"), []string{"sound:digits/1", "sound:digits/2"}; !slices.Equal(got, want) {
		t.Errorf("sayDigits(12) = %q, want %q", got, want)
	}
}

func testCatalog(t *testing.T) *presence.Catalog {
	t.Helper()
	cat, err := presence.NewCatalog([]presence.User{
		{ID: "alice", Name: "Alice", Extension: "1001", Devices: []presence.Device{{Dial: "PJSIP/1001", Family: presence.FamilyDesk}, {Dial: "PJSIP/1001-mobile", Family: presence.FamilyMobile}}},
		{ID: "bob", Extension: "1002", Devices: []presence.Device{{Dial: "PJSIP/1002", Family: presence.FamilyDesk}}},
	}, []presence.Profile{
		{ID: "available", Name: "Available", Activation: "1"},
		{ID: "lunch", Name: "Lunch", Activation: "3"},
		{ID: "quiet", Name: "Quiet"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestUserOfDevice(t *testing.T) {
	cat := testCatalog(t)
	for _, tc := range []struct{ channel, want string }{
		{"PJSIP/1001-0000002a", "alice"},
		{"PJSIP/1001-mobile-00000003", "alice"},
		{"pjsip/1002-00000001", "bob"},
		{"PJSIP/1003-00000001", ""},
		{"Local/*553@presenced-features-00000000;2", ""},
		{"PJSIP", ""},
	} {
		u, ok := userOfDevice(cat, tc.channel)
		got := ""
		if ok {
			got = string(u.ID)
		}
		if got != tc.want {
			t.Errorf("userOfDevice(%q) = %q, want %q", tc.channel, got, tc.want)
		}
	}
}

func TestWriteHints(t *testing.T) {
	var b strings.Builder
	if err := WriteHints(&b, testCatalog(t), presence.DefaultNaming()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"\n[presenced-hints-1001] ; Alice\ninclude => presenced-hints\nexten => *551,hint,Custom:PROFILE1001-1 ; Available\nexten => *553,hint,Custom:PROFILE1001-3 ; Lunch\n",
		"\n[presenced-hints-1002] ; bob\ninclude => presenced-hints\nexten => *551,hint,Custom:PROFILE1002-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteHints output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Quiet") {
		t.Errorf("a profile without activation number got a hint:\n%s", out)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Options.Channels") {
		t.Errorf("New(zero) = %v", err)
	}
}
