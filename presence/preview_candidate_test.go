package presence_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestPreviewOfACandidate: PreviewWith previews switching to a personal profile as edited,
// checked as SaveProfile checks it, without storing it; the stored one (or none) is untouched.
func TestPreviewOfACandidate(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	ringTime := func(id string, n int) *presence.Profile {
		return &presence.Profile{ID: id, Name: "Home", OnEnter: []presence.Action{{Kind: presence.ActionFollowMe, Families: []presence.Family{presence.FamilyDesk}, RingTime: n}}}
	}
	if err := e.SaveProfile(ctx, "alice", ringTime("home", 10)); err != nil {
		t.Fatal(err)
	}
	values := func(res *presence.SwitchResult) []string {
		var out []string
		for _, o := range res.Outcomes {
			if o.Result != presence.ResultPlanned {
				t.Errorf("outcome %s: %s", o.Op, o.Result)
			}
			if o.Op.Kind == presence.OpDBPut && o.Op.Key == "PROFILE/"+presence.Alice().Extension+"/ringtime" {
				out = append(out, o.Op.Value)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		candidate *presence.Profile
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
			res, err := e.PreviewWith(ctx, presence.SwitchRequest{User: "alice", Profile: to, Source: presence.SourceAPI}, presence.PreviewOptions{Candidate: tc.candidate})
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
	if _, err := e.PreviewWith(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI},
		presence.PreviewOptions{Candidate: &presence.Profile{ID: "lunch"}}); !errors.Is(err, presence.ErrSystemProfile) {
		t.Errorf("a system-wide id: %v", err)
	}
	var ve *presence.ValidationError
	if _, err := e.PreviewWith(ctx, presence.SwitchRequest{User: "alice", Profile: "home", Source: presence.SourceAPI},
		presence.PreviewOptions{Candidate: &presence.Profile{ID: "home", OnEnter: []presence.Action{{Kind: "teleport"}}}}); !errors.As(err, &ve) {
		t.Errorf("an invalid candidate: %v", err)
	}
	if err := e.CheckProfile(ctx, "alice", &presence.Profile{ID: "x", Activation: "no"}); !errors.As(err, &ve) {
		t.Errorf("CheckProfile of an invalid profile: %v", err)
	}
	ps, err := states.PersonalProfiles(ctx, "alice")
	if err != nil || len(ps) != 1 || ps[0].OnEnter[0].RingTime != 10 {
		t.Fatalf("stored profiles after the previews: %+v %v", ps, err)
	}
	if len(pbx.Applied()) != 0 {
		t.Fatalf("a preview applied %v", pbx.Applied())
	}
	if _, found, _ := states.Load(ctx, "alice"); found {
		t.Fatal("a preview saved state")
	}
}
