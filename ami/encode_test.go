package ami

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	goami "github.com/heltonmarx/goami/ami"
)

// The actions a switch sends are encoded by this package, not through goami (whose reflection
// and the parse of its text took about an eighth of presenced's CPU in a mass switch:
// docs/BENCHMARKS.md). goami's encoders stay the reference: for every input, the hand encoder
// must give exactly the headers goami gives, in the same order (Setvar and Getvar, which goami
// writes in a random order, compared in any order), but for the one deliberate difference
// (DBDelTree leaves out an empty Key).

// byGoami encodes a with goami's encoder for it.
func byGoami(a Action) ([]Header, error) {
	var f func(ctx context.Context, c goami.Client) error
	switch a := a.(type) {
	case QueueAdd:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.QueueAdd(ctx, c, "", goami.QueueData{Queue: a.Queue, Interface: a.Interface,
				Penalty: strconv.Itoa(a.Penalty), Paused: boolString(a.Paused), MemberName: a.MemberName,
				StateInterface: a.StateInterface, Reason: a.Reason}))
		}
	case QueueRemove:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.QueueRemove(ctx, c, "", goami.QueueData{Queue: a.Queue, Interface: a.Interface}))
		}
	case QueuePause:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.QueuePause(ctx, c, "", goami.QueueData{Queue: a.Queue, Interface: a.Interface,
				Paused: boolString(a.Paused), Reason: a.Reason}))
		}
	case QueuePenalty:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.QueuePenalty(ctx, c, "", goami.QueueData{Queue: a.Queue, Interface: a.Interface,
				Penalty: strconv.Itoa(a.Penalty)}))
		}
	case DBPut:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.DBPut(ctx, c, "", a.Family, a.Key, a.Value))
		}
	case DBGet:
		f = func(ctx context.Context, c goami.Client) error { return one(goami.DBGet(ctx, c, "", a.Family, a.Key)) }
	case DBDel:
		f = func(ctx context.Context, c goami.Client) error { return one(goami.DBDel(ctx, c, "", a.Family, a.Key)) }
	case DBDelTree:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.DBDelTree(ctx, c, "", a.Family, a.Key))
		}
	case Setvar:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.Setvar(ctx, c, "", a.Channel, a.Variable, a.Value))
		}
	case Getvar:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.Getvar(ctx, c, "", a.Channel, a.Variable))
		}
	case PresenceState:
		f = func(ctx context.Context, c goami.Client) error {
			return one(goami.PresenceState(ctx, c, "", a.Provider))
		}
	default:
		return nil, fmt.Errorf("no goami reference for %T", a)
	}
	hs, err := viaGoami(a.ActionName(), f)
	if d, ok := a.(DBDelTree); ok && err == nil && d.Key == "" {
		m := Message{Headers: hs}
		m.Del("Key") // the deliberate difference
		hs = m.Headers
	}
	return hs, err
}

// sameAsGoami fails t when a's own encoding differs from goami's. Inputs the encoder refuses
// (missing, CR LF, NUL) are not compared: goami would encode them.
func sameAsGoami(t *testing.T, a Action) {
	t.Helper()
	got, err := a.ActionHeaders()
	if err != nil {
		return
	}
	want, err := byGoami(a)
	if err != nil {
		t.Fatalf("%#v: goami: %v", a, err)
	}
	switch a.(type) {
	case Setvar, Getvar: // goami builds these from a map: its order is random
		byKey := func(x, y Header) int { return strings.Compare(x.Key, y.Key) }
		got, want = slices.SortedFunc(slices.Values(got), byKey), slices.SortedFunc(slices.Values(want), byKey)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%#v:\n encoded %q\n goami   %q", a, got, want)
	}
}

func TestEncodersMatchGoami(t *testing.T) {
	for _, a := range []Action{
		QueueAdd{Queue: "sales", Interface: "Local/1001@queue-member/n", MemberName: "Alice", StateInterface: "hint:1001@ext-local", Penalty: 3, Paused: true, Reason: "Lunch"},
		QueueAdd{Queue: "q", Interface: "PJSIP/1"},
		QueueAdd{Queue: "q", Interface: "PJSIP/1", Paused: true},
		QueueAdd{Queue: "q", Interface: "PJSIP/1", Reason: "r"},
		QueueAdd{Queue: "q", Interface: "PJSIP/1", StateInterface: "Custom:x", Penalty: 12},
		QueueRemove{Queue: "sales", Interface: "PJSIP/1001"},
		QueuePause{Queue: "sales", Interface: "PJSIP/1001", Paused: true, Reason: "DND"},
		QueuePause{Interface: "PJSIP/1001"},
		QueuePause{Interface: "PJSIP/1001", Reason: "after call"},
		QueuePenalty{Queue: "sales", Interface: "PJSIP/1001", Penalty: 2},
		QueuePenalty{Interface: "PJSIP/1001"},
		DBPut{Family: "PRESENCED", Key: "profile/alice", Value: "lunch"},
		DBPut{Family: "F", Key: "k/1", Value: "50%d: a,b"},
		DBPut{Family: "F", Key: "k"},
		DBPut{Family: "F", Key: "k", Value: " spaced "},
		DBGet{Family: "CF", Key: "1001"},
		DBDel{Family: "DND", Key: "1001"},
		DBDelTree{Family: "PRESENCED", Key: "alice"},
		DBDelTree{Family: "PRESENCED"},
		Setvar{Variable: "DEVICE_STATE(Custom:DND1001)", Value: "BUSY"},
		Setvar{Channel: "PJSIP/1001-00000001", Variable: "X", Value: "y"},
		Setvar{Variable: "PRESENCED_APP"},
		Setvar{Channel: "PJSIP/1", Variable: "X"},
		Getvar{Variable: "PRESENCED_APP"},
		Getvar{Channel: "PJSIP/1001-00000001", Variable: "CALLERID(num)"},
		PresenceState{Provider: "CustomPresence:1001"},
	} {
		sameAsGoami(t, a)
	}
}

// FuzzEncodersMatchGoami compares every hand-encoded action with goami's encoding for the same
// arbitrary values.
func FuzzEncodersMatchGoami(f *testing.F) {
	f.Add("sales", "PJSIP/1001", "Alice", "hint:1001@ext", "Lunch", 3, true)
	f.Add("", "Local/1@q/n", "", "", "", 0, false)
	f.Add("q", "i", "50%d: a,b", " ", "%s", -1, false)
	f.Fuzz(func(t *testing.T, a, b, c, d, e string, n int, flag bool) {
		for _, act := range []Action{
			QueueAdd{Queue: a, Interface: b, MemberName: c, StateInterface: d, Reason: e, Penalty: n, Paused: flag},
			QueueRemove{Queue: a, Interface: b},
			QueuePause{Queue: a, Interface: b, Paused: flag, Reason: e},
			QueuePenalty{Queue: a, Interface: b, Penalty: n},
			DBPut{Family: a, Key: b, Value: c},
			DBGet{Family: a, Key: b},
			DBDel{Family: a, Key: b},
			DBDelTree{Family: a, Key: b},
			Setvar{Channel: a, Variable: b, Value: c},
			Getvar{Channel: a, Variable: b},
			PresenceState{Provider: a},
		} {
			sameAsGoami(t, act)
		}
	})
}
