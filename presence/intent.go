package presence

import (
	"maps"
	"slices"
)

// Intent is what the profiles a user went through say the PBX should do for them, in the
// model's terms: the fold of every action applied so far. A nil field or a missing map entry
// means no profile has said anything about it, and presenced leaves it alone.
type Intent struct {
	Queues    map[string]QueueIntent `json:"queues,omitempty"`
	DND       *DNDIntent             `json:"dnd,omitempty"`
	RingList  *RingList              `json:"ring_list,omitempty"`
	Mobile    *bool                  `json:"mobile,omitempty"`
	Forward   map[ForwardType]string `json:"forward,omitempty"` // "" = no forwarding
	NoAnswer  *string                `json:"no_answer,omitempty"`
	CallerID  *string                `json:"caller_id,omitempty"`  // for calls from every phone of the user's
	CallerIDs map[Family]string      `json:"caller_ids,omitempty"` // per family of phones; "" = CallerID's
	Location  *string                `json:"location,omitempty"`
	Presence  *PresenceValue         `json:"presence,omitempty"`
	Lamps     map[string]string      `json:"lamps,omitempty"`     // Custom:name → state
	Variables map[string]*string     `json:"variables,omitempty"` // "astdb:FAMILY/key" or "global:NAME" → value; nil = removed
}

// QueueIntent is what a user should be in one queue. Member nil means no profile said whether
// the user is in the queue (only pause was): membership is left alone.
type QueueIntent struct {
	Member *bool  `json:"member,omitempty"`
	Paused bool   `json:"paused,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DNDIntent is do-not-disturb with the text shown for it (profile name and additional info).
type DNDIntent struct {
	On   bool   `json:"on"`
	Text string `json:"text,omitempty"`
}

// RingList says which of a user's devices ring, how and for how long.
type RingList struct {
	Families []Family  `json:"families,omitempty"`
	Order    RingOrder `json:"order,omitempty"`
	RingTime int       `json:"ring_time,omitempty"`
	// RingTimes are the seconds of each family's step of a sequential ring, in Families' order.
	RingTimes []int `json:"ring_times,omitempty"`
}

// PresenceValue is a presence state with its message.
type PresenceValue struct {
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
}

// Clone returns a deep copy.
func (in Intent) Clone() Intent {
	out := in
	out.Queues = maps.Clone(in.Queues)
	out.Forward = maps.Clone(in.Forward)
	out.Lamps = maps.Clone(in.Lamps)
	out.Variables = maps.Clone(in.Variables)
	out.CallerIDs = maps.Clone(in.CallerIDs)
	if in.DND != nil {
		d := *in.DND
		out.DND = &d
	}
	if in.RingList != nil {
		r := *in.RingList
		r.Families = slices.Clone(r.Families)
		r.RingTimes = slices.Clone(r.RingTimes)
		out.RingList = &r
	}
	if in.Presence != nil {
		p := *in.Presence
		out.Presence = &p
	}
	return out
}

// Webhook is a call to make during a switch. Webhooks are effects, not state: they are not
// repeated by a repair.
type Webhook struct {
	URL     string `json:"url"`
	Timeout string `json:"timeout,omitempty"`
}

// folding is what a fold of a lineage records besides the intent: which actions it may run,
// and which step last wrote (and which steps were read for) each part of the intent.
type folding struct {
	allow  func(*Profile, *Action) bool // nil runs every enabled action
	step   int
	writer map[string]int // part of the intent → the step that last wrote it
	needed map[int]bool   // steps whose writes a later step read
}

func (f *folding) wrote(part string) {
	if f != nil && f.writer != nil {
		f.writer[part] = f.step
	}
}

func (f *folding) read(part string) {
	if f != nil && f.writer != nil {
		if w, ok := f.writer[part]; ok {
			f.needed[w] = true
		}
	}
}

// presenceMessage is the message a presence state shows for profile p: the text given (or,
// when none, the profile's name with the info), cut to what Asterisk keeps; for a private
// profile only the neutral text of the state, whatever was given.
func presenceMessage(p *Profile, state, given, text string) string {
	if p.Visibility == VisibilityPrivate {
		return PresenceLabel(state)
	}
	if given != "" {
		return given
	}
	return truncateText(text, MaxPresenceMessage)
}

// fold applies the enabled actions of p's on_exit chain (exit) or on_enter chain and presence
// state, in order, and returns the webhooks they call. f, when not nil, filters the actions and
// records what each part of the intent came from.
func (in *Intent) fold(u *User, p *Profile, exit bool, info string, f *folding) []Webhook {
	var hooks []Webhook
	text := p.Name
	if info != "" {
		text = p.Name + " (" + info + ")"
	}
	actions := p.OnEnter
	if exit {
		actions = p.OnExit
	}
	for i := range actions {
		a := &actions[i]
		if !a.IsEnabled() || (f != nil && f.allow != nil && !f.allow(p, a)) {
			continue
		}
		on := a.IsOn()
		switch a.Kind {
		case ActionQueueLogin, ActionQueueLogout, ActionQueuePause, ActionQueueUnpause:
			if in.Queues == nil {
				in.Queues = map[string]QueueIntent{}
			}
			for _, q := range a.Queues.Resolve(u) {
				qi := in.Queues[q]
				switch a.Kind {
				case ActionQueueLogin:
					qi.Member = ptr(true)
					f.wrote("queue:" + q + ":member")
				case ActionQueueLogout:
					qi = QueueIntent{Member: ptr(false)}
					f.wrote("queue:" + q + ":member")
					f.wrote("queue:" + q + ":pause")
				case ActionQueuePause:
					qi.Paused = true
					qi.Reason = a.Reason
					if qi.Reason == "" {
						qi.Reason = p.Name
					}
					f.wrote("queue:" + q + ":pause")
				case ActionQueueUnpause:
					qi.Paused, qi.Reason = false, ""
					f.wrote("queue:" + q + ":pause")
				}
				in.Queues[q] = qi
			}
		case ActionDND:
			in.DND = &DNDIntent{On: on}
			if on {
				in.DND.Text = text
			}
			f.wrote("dnd")
		case ActionFollowMe:
			in.RingList = &RingList{Families: slices.Clone(a.Families), Order: a.Order, RingTime: a.RingTime,
				RingTimes: slices.Clone(a.RingTimes)}
			f.wrote("ring_list")
		case ActionMobile:
			in.Mobile = &on
			f.wrote("mobile")
		case ActionForward:
			if in.Forward == nil {
				in.Forward = map[ForwardType]string{}
			}
			in.Forward[a.Type] = onOrEmpty(on, a.To)
			f.wrote("forward:" + string(a.Type))
		case ActionNoAnswer:
			in.NoAnswer = ptr(onOrEmpty(on, a.To))
			f.wrote("no_answer")
		case ActionCallerID:
			v := onOrEmpty(on, a.Value)
			families := a.Families
			if len(families) == 0 {
				// For every phone: the caller IDs set per family before give way.
				in.CallerID = ptr(v)
				f.wrote("caller_id")
				families, v = Families(), ""
			}
			if in.CallerIDs == nil {
				in.CallerIDs = map[Family]string{}
			}
			for _, fam := range families {
				in.CallerIDs[fam] = v
				f.wrote("caller_id:" + string(fam))
			}
		case ActionLocation:
			in.Location = ptr(onOrEmpty(on, a.Device))
			f.wrote("location")
		case ActionPresence:
			pv := PresenceValue{State: a.State}
			if pv.State == "" && in.Presence != nil {
				pv.State = in.Presence.State
				f.read("presence")
			}
			if pv.State == "" {
				pv.State = "available"
			}
			pv.Message = presenceMessage(p, pv.State, a.Message, text)
			in.Presence = &pv
			f.wrote("presence")
		case ActionLamp:
			if in.Lamps == nil {
				in.Lamps = map[string]string{}
			}
			in.Lamps[a.Device] = a.State
			f.wrote("lamp:" + a.Device)
		case ActionVariable:
			if in.Variables == nil {
				in.Variables = map[string]*string{}
			}
			scope := a.Scope
			if scope == "" {
				scope = "astdb"
			}
			if on {
				in.Variables[scope+":"+a.Name] = ptr(a.Value)
			} else {
				in.Variables[scope+":"+a.Name] = nil
			}
			f.wrote("variable:" + scope + ":" + a.Name)
		case ActionWebhook:
			hooks = append(hooks, Webhook{URL: a.URL, Timeout: a.Timeout})
		}
	}
	if !exit && p.Presence != "" {
		in.Presence = &PresenceValue{State: p.Presence, Message: presenceMessage(p, p.Presence, "", text)}
		f.wrote("presence")
	}
	return hooks
}

func onOrEmpty(on bool, v string) string {
	if on {
		return v
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
