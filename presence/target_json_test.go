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
				"sales":   {Interface: "Local/1001@presenced-queue-member/n", Membership: MembershipOptional},
				"old":     nil,
			},
			AstDB:    map[string]*string{"DND/1001": &v, "CF/1001": nil, "PROFILE/PJSIP:hotdesk-1": ptr("1001:desk")},
			Devices:  map[string]string{"Custom:DND1001": "BUSY"},
			Presence: map[string]*PresenceValue{"CustomPresence:1001": {State: "away", Message: "out"}},
			Globals:  map[string]*string{"G": &v, "H": nil},
		},
		Claims: map[string]string{"PROFILE/PJSIP:hotdesk-1": "1001:desk"},
	}
	observed := &Target{Interface: "x", Queues: map[string]*QueueMember{"support": {Interface: "x", Membership: MembershipStatic, Penalty: 1}},
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

// TestQueueMemberJSON: a member's Membership is written and read as the two flags "static"
// and "optional" (the JSON as it was before Membership).
func TestQueueMemberJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		member QueueMember
		json   string
	}{
		{"empty", QueueMember{}, `{"interface":"","penalty":0,"paused":false}`},
		{"managed", QueueMember{Interface: "Local/1001@q/n", MemberName: "Alice", StateInterface: "hint:1001@hints", Penalty: 2, Paused: true, Reason: "Lunch"},
			`{"interface":"Local/1001@q/n","member_name":"Alice","state_interface":"hint:1001@hints","penalty":2,"paused":true,"reason":"Lunch"}`},
		{"static", QueueMember{Interface: "PJSIP/1002", Membership: MembershipStatic},
			`{"interface":"PJSIP/1002","penalty":0,"paused":false,"static":true}`},
		{"optional", QueueMember{Interface: "Local/1001@q/n", Paused: true, Membership: MembershipOptional},
			`{"interface":"Local/1001@q/n","penalty":0,"paused":true,"optional":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []any{tc.member, &tc.member} {
				got, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.json {
					t.Errorf("%T encodes %s, want %s", v, got, tc.json)
				}
			}
			var back QueueMember
			if err := json.Unmarshal([]byte(tc.json), &back); err != nil {
				t.Fatal(err)
			}
			if back != tc.member {
				t.Errorf("decodes to %+v, want %+v", back, tc.member)
			}
		})
	}
	// Within an op, as the journal and the API write it.
	op := Op{Kind: OpQueueAdd, Queue: "q", Member: &QueueMember{Interface: "x", Membership: MembershipOptional}}
	const want = `{"kind":"queue_add","queue":"q","member":{"interface":"x","penalty":0,"paused":false,"optional":true}}`
	if got, err := json.Marshal(op); err != nil || string(got) != want {
		t.Errorf("op encodes %s (%v), want %s", got, err, want)
	}
	var back Op
	if err := json.Unmarshal([]byte(want), &back); err != nil || !reflect.DeepEqual(back, op) {
		t.Errorf("op decodes to %+v (%v), want %+v", back, err, op)
	}
}
