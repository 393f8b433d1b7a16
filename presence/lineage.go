package presence

import "slices"

// Step is one action chain that a user's switches applied: the on_exit chain of the profile
// left, or the on_enter chain (and presence state) of the profile entered, with the additional
// info of the switch.
//
// A user's desired state is not stored as such: it is the fold of their steps (their lineage),
// compiled again from the profiles' current definitions every time it is needed. So a deleted
// or changed profile takes back what only it put into the desired state, and an action that
// the rules no longer allow (PersonalRules) stops acting, whenever it was stored.
type Step struct {
	Profile string `json:"profile"`
	Exit    bool   `json:"exit,omitempty"`
	Info    string `json:"info,omitempty"`
}

// MaxSteps bounds a user's lineage. Compaction keeps only the steps that still decide some
// part of the desired state, which are few; past this many the oldest are dropped.
const MaxSteps = 32

// FoldSteps is the intent of a lineage: every step's chain of its profile's current definition,
// folded in order from nothing. A step whose profile no longer exists is skipped; allow, when
// not nil, says which actions run (the others are skipped). FoldSteps is pure.
func FoldSteps(u *User, steps []Step, profiles []*Profile, allow func(*Profile, *Action) bool) Intent {
	var in Intent
	f := &folding{allow: allow}
	for _, s := range steps {
		if p := FindProfile(profiles, s.Profile); p != nil {
			in.fold(u, p, s.Exit, s.Info, f)
		}
	}
	return in
}

// CompactSteps drops the steps that decide nothing any more (every part of the intent they
// wrote was written again by a later step, and no later step read it), so that a lineage stays
// short however often the user switches; the last step always stays. The intent of the
// compacted lineage is the intent of the whole one. CompactSteps is pure.
func CompactSteps(u *User, steps []Step, profiles []*Profile, allow func(*Profile, *Action) bool) []Step {
	if len(steps) == 0 {
		return nil
	}
	var in Intent
	f := &folding{allow: allow, writer: map[string]int{}, needed: map[int]bool{}}
	for i, s := range steps {
		f.step = i
		if p := FindProfile(profiles, s.Profile); p != nil {
			in.fold(u, p, s.Exit, s.Info, f)
		}
	}
	keep := f.needed
	keep[len(steps)-1] = true
	for _, i := range f.writer {
		keep[i] = true
	}
	out := make([]Step, 0, len(keep))
	for i, s := range steps {
		if keep[i] {
			out = append(out, s)
		}
	}
	if len(out) > MaxSteps {
		out = out[len(out)-MaxSteps:]
	}
	return out
}

// lineage is the user's steps. A state written before lineages existed (by presenced 0.x, with
// the folded intent only) counts as having entered its profile: what older profiles put into it
// is no longer desired (and no longer enforced), until the next switch says it again.
func (st UserState) lineage() []Step {
	if len(st.Steps) == 0 && st.Profile != "" {
		return []Step{{Profile: st.Profile, Info: st.Info}}
	}
	return slices.Clone(st.Steps)
}

// switchWebhooks are the webhooks switching from from (nil for none) to to calls: from's
// on_exit chain, then to's on_enter chain.
func switchWebhooks(u *User, from, to *Profile, info string, allow func(*Profile, *Action) bool) []Webhook {
	var scratch Intent
	f := &folding{allow: allow}
	var hooks []Webhook
	if from != nil {
		hooks = append(hooks, scratch.fold(u, from, true, info, f)...)
	}
	return append(hooks, scratch.fold(u, to, false, info, f)...)
}
