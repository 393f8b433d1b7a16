package ami_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// sortedHeaders returns "Key: Value" lines sorted, for comparing encoders
// whose goami map-based output has no fixed order.
func sortedHeaders(hs []ami.Header) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Key+": "+h.Value)
	}
	slices.Sort(out)
	return out
}

func TestActionEncoding(t *testing.T) {
	tests := []struct {
		name   string
		action ami.Action
		want   []string // "Key: Value", any order
	}{
		{"QueueAdd", ami.QueueAdd{Queue: "sales", Interface: "Local/1001@queue-member/n", MemberName: "Alice",
			StateInterface: "hint:1001@hints", Penalty: 0, Paused: true, Reason: "50%: lunch, later"},
			[]string{"Queue: sales", "Interface: Local/1001@queue-member/n", "MemberName: Alice",
				"StateInterface: hint:1001@hints", "Penalty: 0", "Paused: true", "Reason: 50%: lunch, later"}},
		{"QueueAdd minimal sends Penalty 0 and Paused false", ami.QueueAdd{Queue: "q", Interface: "PJSIP/1"},
			[]string{"Queue: q", "Interface: PJSIP/1", "Penalty: 0", "Paused: false"}},
		{"QueueRemove", ami.QueueRemove{Queue: "q", Interface: "PJSIP/1"}, []string{"Queue: q", "Interface: PJSIP/1"}},
		{"QueuePause unpause sends false", ami.QueuePause{Queue: "q", Interface: "PJSIP/1"},
			[]string{"Queue: q", "Interface: PJSIP/1", "Paused: false"}},
		{"QueuePause all queues", ami.QueuePause{Interface: "PJSIP/1", Paused: true, Reason: "r"},
			[]string{"Interface: PJSIP/1", "Paused: true", "Reason: r"}},
		{"QueuePenalty 0 kept", ami.QueuePenalty{Queue: "q", Interface: "PJSIP/1", Penalty: 0},
			[]string{"Queue: q", "Interface: PJSIP/1", "Penalty: 0"}},
		{"QueueStatus all", ami.QueueStatus{}, nil},
		{"QueueStatus filtered", ami.QueueStatus{Queue: "sales", Member: "Alice"}, []string{"Queue: sales", "Member: Alice"}},
		{"QueueSummary", ami.QueueSummary{Queue: "q"}, []string{"Queue: q"}},
		{"DBPut", ami.DBPut{Family: "F", Key: "k/1", Value: "50%d: a,b"}, []string{"Family: F", "Key: k/1", "Val: 50%d: a,b"}},
		{"DBPut empty value", ami.DBPut{Family: "F", Key: "k"}, []string{"Family: F", "Key: k"}},
		{"DBGet", ami.DBGet{Family: "F", Key: "k"}, []string{"Family: F", "Key: k"}},
		{"DBGetTree whole db", ami.DBGetTree{}, nil},
		{"DBGetTree", ami.DBGetTree{Family: "F", Key: "k"}, []string{"Family: F", "Key: k"}},
		{"DBDel", ami.DBDel{Family: "F", Key: "k"}, []string{"Family: F", "Key: k"}},
		{"DBDelTree family", ami.DBDelTree{Family: "F"}, []string{"Family: F"}},
		{"DBDelTree key", ami.DBDelTree{Family: "F", Key: "k"}, []string{"Family: F", "Key: k"}},
		{"Setvar global", ami.Setvar{Variable: "DEVICE_STATE(Custom:DND1001)", Value: "BUSY"},
			[]string{"Channel: ", "Variable: DEVICE_STATE(Custom:DND1001)", "Value: BUSY"}},
		{"Setvar delete global", ami.Setvar{Variable: "G"}, []string{"Channel: ", "Variable: G", "Value: "}},
		{"Getvar", ami.Getvar{Channel: "PJSIP/1-0001", Variable: "X"}, []string{"Channel: PJSIP/1-0001", "Variable: X"}},
		{"ExtensionState", ami.ExtensionState{Exten: "1001", Context: "hints"}, []string{"Exten: 1001", "Context: hints"}},
		{"ExtensionStateList", ami.ExtensionStateList{}, nil},
		{"DeviceStateList", ami.DeviceStateList{}, nil},
		{"PresenceState", ami.PresenceState{Provider: "CustomPresence:1001"}, []string{"Provider: CustomPresence:1001"}},
		{"PresenceStateList", ami.PresenceStateList{}, nil},
		{"PlayDTMF receive", ami.PlayDTMF{Channel: "Local/x;2", Digit: "5", Receive: true},
			[]string{"Channel: Local/x;2", "Digit: 5", "Receive: true"}},
		{"PlayDTMF duration", ami.PlayDTMF{Channel: "c", Digit: "#", Duration: 250 * time.Millisecond},
			[]string{"Channel: c", "Digit: #", "Duration: 250"}},
		{"UserEvent", ami.UserEvent{Name: "Sync", Headers: []ami.Header{{Key: "Data", Value: "a,b: 50%"}}},
			[]string{"UserEvent: Sync", "Data: a,b: 50%"}},
		{"Hangup", ami.Hangup{Channel: "PJSIP/1-01"}, []string{"Channel: PJSIP/1-01"}},
		{"Hangup cause", ami.Hangup{Channel: "PJSIP/1-01", Cause: 16}, []string{"Channel: PJSIP/1-01", "Cause: 16"}},
		{"CoreShowChannels", ami.CoreShowChannels{}, nil},
		{"CoreStatus", ami.CoreStatusAction{}, nil},
		{"Command", ami.Command{Command: "core show version"}, []string{"Command: core show version"}},
		{"Ping", ami.Ping{}, nil},
		{"Originate", ami.Originate{Channel: "Local/*551234@features", Application: "Wait", Data: "30",
			CallerID: `"Alice" <1001>`, Async: true, ChannelID: "t1-1", OtherChannelID: "t1-2", Timeout: 15 * time.Second,
			Variables: map[string]string{"B": "x,y", "A": `50%: "q" (p) [b] \`}},
			[]string{"Channel: Local/*551234@features", "Application: Wait", "Data: 30", `CallerID: "Alice" <1001>`,
				"Async: true", "ChannelId: t1-1", "OtherChannelId: t1-2", "Timeout: 15000",
				`Variable: A=50%: \"q\" \(p\) \[b\] \\`, `Variable: B=x\,y`}},
		{"Originate exten defaults priority 1", ami.Originate{Channel: "Local/wait@test-helpers", Context: "test-helpers", Exten: "wait"},
			[]string{"Channel: Local/wait@test-helpers", "Context: test-helpers", "Exten: wait", "Priority: 1"}},
		{"Raw", ami.Raw{Name: "QueueReload", Headers: []ami.Header{{Key: "Queue", Value: "sales"}}}, []string{"Queue: sales"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := tt.action.ActionHeaders()
			if err != nil {
				t.Fatal(err)
			}
			got := sortedHeaders(hs)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if len(got) != 0 || len(want) != 0 {
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s headers:\n got  %q\n want %q", tt.action.ActionName(), got, want)
				}
			}
			for _, h := range hs {
				if strings.EqualFold(h.Key, "Action") || strings.EqualFold(h.Key, "ActionID") {
					t.Fatalf("encoder returned %s header", h.Key)
				}
			}
		})
	}
}

func TestActionEncodingOrderOfOwnEncoders(t *testing.T) {
	hs, err := ami.UserEvent{Name: "E", Headers: []ami.Header{{Key: "B", Value: "1"}, {Key: "A", Value: "2"}, {Key: "B", Value: "3"}}}.ActionHeaders()
	if err != nil {
		t.Fatal(err)
	}
	want := []ami.Header{{Key: "UserEvent", Value: "E"}, {Key: "B", Value: "1"}, {Key: "A", Value: "2"}, {Key: "B", Value: "3"}}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("got %q, want %q", hs, want)
	}
}

func TestActionEncodingRejects(t *testing.T) {
	crlf := "x\r\nAction: Logoff"
	tests := []struct {
		name   string
		action ami.Action
		want   string // substring of the error
	}{
		{"DBPut value CRLF", ami.DBPut{Family: "F", Key: "k", Value: crlf}, "Value contains CR or LF"},
		{"DBPut key LF", ami.DBPut{Family: "F", Key: "k\n", Value: "v"}, "Key contains CR or LF"},
		{"DBPut NUL", ami.DBPut{Family: "F", Key: "k", Value: "a\x00b"}, "NUL"},
		{"QueueAdd reason", ami.QueueAdd{Queue: "q", Interface: "i", Reason: crlf}, "Reason contains CR or LF"},
		{"QueuePause reason CR", ami.QueuePause{Interface: "i", Paused: true, Reason: "a\rb"}, "Reason"},
		{"Setvar value", ami.Setvar{Variable: "G", Value: crlf}, "Value contains CR or LF"},
		{"Getvar channel", ami.Getvar{Channel: crlf, Variable: "G"}, "Channel"},
		{"UserEvent header", ami.UserEvent{Name: "E", Headers: []ami.Header{{Key: "K", Value: crlf}}}, "CR or LF"},
		{"UserEvent name", ami.UserEvent{Name: crlf}, "Name"},
		{"UserEvent bad key", ami.UserEvent{Name: "E", Headers: []ami.Header{{Key: "A:B", Value: "v"}}}, "key"},
		{"UserEvent sets UserEvent", ami.UserEvent{Name: "E", Headers: []ami.Header{{Key: "userevent", Value: "v"}}}, "UserEvent header"},
		{"Originate variable", ami.Originate{Channel: "c", Application: "Wait", Variables: map[string]string{"V": crlf}}, "Variable V"},
		{"Originate variable name", ami.Originate{Channel: "c", Application: "Wait", Variables: map[string]string{"A=B": "x"}}, "variable name"},
		{"Originate no target", ami.Originate{Channel: "c"}, "Exten or Application"},
		{"PlayDTMF channel", ami.PlayDTMF{Channel: crlf, Digit: "1"}, "Channel"},
		{"Command", ami.Command{Command: "core show version\r\nAction: Logoff"}, "Command"},
		{"Raw value", ami.Raw{Name: "X", Headers: []ami.Header{{Key: "K", Value: crlf}}}, "CR or LF"},
		{"QueueAdd missing queue", ami.QueueAdd{Interface: "i"}, "Queue is required"},
		{"QueueAdd negative penalty", ami.QueueAdd{Queue: "q", Interface: "i", Penalty: -1}, "Penalty"},
		{"DBGet missing key", ami.DBGet{Family: "F"}, "Key is required"},
		{"DBGetTree key without family", ami.DBGetTree{Key: "k"}, "without Family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.action.ActionHeaders()
			if !errors.Is(err, ami.ErrInvalidHeader) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidHeader mentioning %q", err, tt.want)
			}
		})
	}
}

func TestEscapeAppArg(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"a,b":          `a\,b`,
		`say "hi"`:     `say \"hi\"`,
		`f(x)[y]`:      `f\(x\)\[y\]`,
		`back\slash`:   `back\\slash`,
		"50%: ünïcode": "50%: ünïcode",
	} {
		if got := ami.EscapeAppArgForTest(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitDBKey(t *testing.T) {
	tests := []struct{ full, family, wantF, wantN string }{
		{"/PROFILE/1001/active", "PROFILE", "PROFILE", "1001/active"},
		{"/Queue/PersistentMembers/sales", "Queue/PersistentMembers", "Queue/PersistentMembers", "sales"},
		{"/profile/1001", "PROFILE", "profile", "1001"},
		{"/A/b", "", "A", "b"},
		{"/AB/c", "A", "AB", "c"},
	}
	for _, tt := range tests {
		f, n := ami.SplitDBKeyForTest(tt.full, tt.family)
		if f != tt.wantF || n != tt.wantN {
			t.Errorf("split(%q, %q) = %q, %q; want %q, %q", tt.full, tt.family, f, n, tt.wantF, tt.wantN)
		}
	}
}

func TestDeviceStatus(t *testing.T) {
	if ami.DeviceNotInUse.String() != "NOT_INUSE" || ami.DeviceOnHold.String() != "ONHOLD" || ami.DeviceStatus(42).String() != "DeviceStatus(42)" {
		t.Errorf("String wrong")
	}
	if s, ok := ami.ParseDeviceStatus("busy"); !ok || s != ami.DeviceBusy {
		t.Errorf("ParseDeviceStatus(busy) = %v, %v", s, ok)
	}
}
