package blf

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestUnescapeC(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		// As PresenceStateList reported them in the lab (ast_escape_c).
		{`Back soon\?`, "Back soon?"},
		{`tab\there`, "tab\there"},
		{`bell\a nl\n cr\r ff\f vt\v bs\b`, "bell\a nl\n cr\r ff\f vt\v bs\b"},
		{`back\\slash \"dq\" \'sq\'`, `back\slash "dq" 'sq'`},
		{`\\x41 \\\?`, `\x41 \?`},
		{`\\\\`, `\\`},
		// Not produced by Asterisk: left alone.
		{`unknown \q escape`, `unknown \q escape`},
		{`trailing \`, `trailing \`},
	}
	for _, tt := range tests {
		if got := unescapeC(tt.in); got != tt.want {
			t.Errorf("unescapeC(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatPresence(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		state, message string
		want           string
		errSubstr      string
	}{
		{"away", "Back at 2pm", "away,,Back at 2pm", ""},
		{"AWAY", "", "away,,", ""},
		{"dnd", "In a meeting, back at 3", "dnd,," + b64("In a meeting, back at 3") + ",e", ""},
		{"available", ",", "available,," + b64(",") + ",e", ""},
		{"xa", `50%: "q" \ 'a' ?`, `xa,,50%: "q" \ 'a' ?`, ""},
		{"chat", "  leading blanks", "chat,,  leading blanks", ""},
		{"not_set", "Büro – zurück", "not_set,,Büro – zurück", ""},
		{"away", strings.Repeat("a,", 127) + "a", "away,," + b64(strings.Repeat("a,", 127)+"a") + ",e", ""},
		{"away", strings.Repeat("a,", 128), "", "message with commas is 256 bytes, Asterisk keeps at most 255"},
		{"away", strings.Repeat("a", 900), "away,," + strings.Repeat("a", 900), ""},
		{"sleepy", "x", "", `state "sleepy" is not one of`},
		{"", "x", "", `state "" is not one of`},
		{"away", "two\nlines", "", "CR, LF or NUL"},
		{"away", "a,b\r", "", "CR, LF or NUL"},
	}
	for _, tt := range tests {
		got, err := FormatPresence(tt.state, tt.message)
		if got != tt.want || (err == nil) != (tt.errSubstr == "") || err != nil && !strings.Contains(err.Error(), tt.errSubstr) {
			t.Errorf("FormatPresence(%q, %q) = %q, %v; want %q, %q", tt.state, tt.message, got, err, tt.want, tt.errSubstr)
		}
	}
}

func TestCheckDevice(t *testing.T) {
	tests := []struct {
		name, state string
		errSubstr   string
	}{
		{"Custom:DND1001", "BUSY", ""},
		{"Custom:PROFILE1001-7", "NOT_INUSE", ""},
		{"Custom:DND1001", "UNKNOWN", `state "UNKNOWN" is not one of`},
		{"Custom:DND1001", "busy", `state "busy"`}, // Apply upper-cases before checking
		{"PJSIP/1001", "BUSY", "not a Custom: device"},
		{"Custom:", "BUSY", "not a Custom: device"},
		{"Custom:a)b", "BUSY", "would break the function call"},
		{"Custom:a,b", "BUSY", "would break the function call"},
		{"Custom:a b", "BUSY", "would break the function call"},
	}
	for _, tt := range tests {
		err := checkDevice(tt.name, tt.state)
		if (err == nil) != (tt.errSubstr == "") || err != nil && !strings.Contains(err.Error(), tt.errSubstr) {
			t.Errorf("checkDevice(%q, %q) = %v, want %q", tt.name, tt.state, err, tt.errSubstr)
		}
	}
}

func TestOneByOne(t *testing.T) {
	for _, tc := range []struct {
		n      int
		listed int64
		want   bool
	}{
		{1, 0, false}, // no list yet: list
		{10, 20, true},
		{10, 19, false},
		{300, 1000, true},
		{600, 1000, false},
	} {
		if got := oneByOne(tc.n, tc.listed); got != tc.want {
			t.Errorf("oneByOne(%d, %d) = %v, want %v", tc.n, tc.listed, got, tc.want)
		}
	}
}
