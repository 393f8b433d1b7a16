package presence

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestPreviewOfACandidate: PreviewWith previews switching to a personal profile as edited,
// checked as SaveProfile checks it, without storing it; the stored one (or none) is untouched.
func TestPreviewOfACandidate(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	ringTime := func(id string, n int) *Profile {
		return &Profile{ID: id, Name: "Home", OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{FamilyDesk}, RingTime: n}}}
	}
	if err := e.SaveProfile(ctx, "alice", ringTime("home", 10)); err != nil {
		t.Fatal(err)
	}
	values := func(res *SwitchResult) []string {
		var out []string
		for _, o := range res.Outcomes {
			if o.Result != ResultPlanned {
				t.Errorf("outcome %s: %s", o.Op, o.Result)
			}
			if o.Op.Kind == OpDBPut && o.Op.Key == "PROFILE/"+alice().Extension+"/ringtime" {
				out = append(out, o.Op.Value)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		candidate *Profile
		want      string
	}{
		{"the stored one", nil, "10"},
		{"an edit of it", ringTime("home", 20), "20"},
		{"a new one", ringTime("draft", 30), "30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := "home"
			if tc.candidate != nil {
				to = tc.candidate.ID
			}
			res, err := e.PreviewWith(ctx, SwitchRequest{User: "alice", Profile: to, Source: SourceAPI}, PreviewOptions{Candidate: tc.candidate})
			if err != nil {
				t.Fatal(err)
			}
			if got := values(res); !slices.Equal(got, []string{tc.want}) || !res.Preview || res.To != to {
				t.Fatalf("ring time %v, want %s: %+v", got, tc.want, res)
			}
			if tc.candidate != nil && tc.candidate.Owner != "" {
				t.Error("the candidate given was changed")
			}
		})
	}
	if _, err := e.PreviewWith(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceAPI},
		PreviewOptions{Candidate: &Profile{ID: "lunch"}}); !errors.Is(err, ErrSystemProfile) {
		t.Errorf("a system-wide id: %v", err)
	}
	var ve *ValidationError
	if _, err := e.PreviewWith(ctx, SwitchRequest{User: "alice", Profile: "home", Source: SourceAPI},
		PreviewOptions{Candidate: &Profile{ID: "home", OnEnter: []Action{{Kind: "teleport"}}}}); !errors.As(err, &ve) {
		t.Errorf("an invalid candidate: %v", err)
	}
	if err := e.CheckProfile(ctx, "alice", &Profile{ID: "x", Activation: "no"}); !errors.As(err, &ve) {
		t.Errorf("CheckProfile of an invalid profile: %v", err)
	}
	ps, err := states.PersonalProfiles(ctx, "alice")
	if err != nil || len(ps) != 1 || ps[0].OnEnter[0].RingTime != 10 {
		t.Fatalf("stored profiles after the previews: %+v %v", ps, err)
	}
	if len(pbx.applied) != 0 {
		t.Fatalf("a preview applied %v", pbx.applied)
	}
	if _, found, _ := states.Load(ctx, "alice"); found {
		t.Fatal("a preview saved state")
	}
}
