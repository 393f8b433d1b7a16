package presence

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// TestTargetJSON: a Desired encodes as a Target did when the claims were one of its fields
// (testdata/target.golden.jsonl was written before the split), "claims" beside the Target's
// fields, and decodes back; an observed Target encodes as before.
func TestTargetJSON(t *testing.T) {
	golden, err := os.ReadFile("testdata/target.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Split(bytes.TrimSuffix(golden, []byte("\n")), []byte("\n"))
	v := "YES"
	desired := &Desired{
		Target: Target{
			Interface: "Local/1001@presenced-queue-member/n",
			Queues: map[string]*QueueMember{
				"support": {Interface: "Local/1001@presenced-queue-member/n", MemberName: "Alice", StateInterface: "hint:1001@hints", Penalty: 2, Paused: true, Reason: "Lunch"},
				"sales":   {Interface: "Local/1001@presenced-queue-member/n", Optional: true},
				"old":     nil,
			},
			AstDB:    map[string]*string{"DND/1001": &v, "CF/1001": nil, "PROFILE/PJSIP:hotdesk-1": ptr("1001:desk")},
			Devices:  map[string]string{"Custom:DND1001": "BUSY"},
			Presence: map[string]*PresenceValue{"CustomPresence:1001": {State: "away", Message: "out"}},
			Globals:  map[string]*string{"G": &v, "H": nil},
		},
		Claims: map[string]string{"PROFILE/PJSIP:hotdesk-1": "1001:desk"},
	}
	observed := &Target{Interface: "x", Queues: map[string]*QueueMember{"support": {Interface: "x", Static: true, Penalty: 1}},
		AstDB: map[string]*string{"DND/1001": &v}}
	for i, tc := range []struct {
		name  string
		value any
		empty func() any
	}{
		{"desired with claims", desired, func() any { return &Desired{} }},
		{"observed", observed, func() any { return &Target{} }},
		{"empty desired", &Desired{}, func() any { return &Desired{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[i]) {
				t.Errorf("encodes\n%s\nwant\n%s", got, want[i])
			}
			back := tc.empty()
			if err := json.Unmarshal(want[i], back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.value) {
				t.Errorf("decodes to %+v, want %+v", back, tc.value)
			}
		})
	}
}
