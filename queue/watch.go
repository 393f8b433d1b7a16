package queue

import (
	"context"
	"strconv"
	"strings"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// watchBuffer is how many events the concern's subscription holds before it overflows (and
// the concern asks for everyone to be checked).
const watchBuffer = 4096

var _ presence.Watcher = (*Concern)(nil)

// Watch implements presence.Watcher. A member added, removed, paused or given another penalty
// (by presenced, by hand, by an agent's own feature code) names the user whose member
// interface it is. A reload of app_queue keeps dynamic members but destroys the queues removed
// from queues.conf with theirs, and lost events say nothing of whom they concerned: both ask
// for everyone.
//
// While it runs, what the events show also keeps what the concern knows of each interface
// (memberships.saw) for Observe, before the engine hears of the event: a pass the event causes
// sees it. Lost events, a reload and a new AMI connection make the concern forget what it read
// before them (memberships.invalidate).
func (c *Concern) Watch(ctx context.Context, w presence.Watch) error {
	members := presence.NewUserIndex(w.Catalog, func(u *presence.User) []string { return []string{w.Naming.Interface(u)} })
	sub := c.ami.SubscribeTo(watchBuffer, "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPenalty", "Reload")
	defer sub.Close()
	c.mem.watch(1) // every event from here on is seen: reads sent from now on can be known
	defer c.mem.watch(-1)
	lost := func() {
		c.mem.invalidate()
		w.All("queue events were dropped")
	}
	return amiwatch.Serve(ctx, sub, lost, func(ev *ami.Message) {
		switch ev.Event() {
		case "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPenalty":
			q := ev.Get("Queue")
			shown, penaltyOK := shownMember(ev)
			c.mem.saw(ev.Get("Interface"), q, shown)
			if id, ok := members.User(ev.Get("Interface")); ok {
				w.Saw(id, memberShown(q, shown, penaltyOK))
			}
		case "Reload":
			if m := strings.ToLower(ev.Get("Module")); m == "" || strings.Contains(m, "app_queue") || strings.Contains(m, "all") {
				c.mem.invalidate()
				w.All("reload of " + orEverything(ev.Get("Module")))
			}
		case ami.EventConnected, ami.EventDisconnected:
			if ev.Synthetic() {
				c.mem.invalidate()
			}
		}
	})
}

// shownMember is the member a member event shows; nil for QueueMemberRemoved. penaltyOK is
// false when the event's Penalty is no number; the member then has penalty -1, which agrees
// with nothing known.
func shownMember(ev *ami.Message) (member *presence.QueueMember, penaltyOK bool) {
	if ev.Event() == "QueueMemberRemoved" {
		return nil, true
	}
	penalty, err := strconv.Atoi(ev.Get("Penalty"))
	if err != nil {
		penalty = -1
	}
	return &presence.QueueMember{
		Interface:      ev.Get("Interface"),
		MemberName:     ev.Get("MemberName"),
		StateInterface: ev.Get("StateInterface"),
		Penalty:        penalty,
		Paused:         ev.Get("Paused") == "1",
		Reason:         ev.Get("PausedReason"),
		Membership:     membership(ev.Get("Membership")),
	}, err == nil
}

func orEverything(module string) string {
	if module == "" {
		return "everything"
	}
	return module
}

// memberShown is what a member event of queue q (QueueMemberAdded, QueueMemberRemoved,
// QueueMemberPause, QueueMemberPenalty) shows of the member, shown (shownMember: nil when it
// left q; penaltyOK false when its penalty was no number): whether a desired Target agrees with
// it, as Plan would compare them. Every member event carries the member's whole state
// (docs/asterisk.md §2.4): Paused, PausedReason (only meaningful while paused: an unpause with a
// reason shows it in that one event) and Penalty. A queue the desired state does not name is
// not presenced's business.
func memberShown(q string, shown *presence.QueueMember, penaltyOK bool) func(want *presence.Target) bool {
	if shown == nil {
		return func(want *presence.Target) bool {
			w, named := wantedIn(want, q)
			return !named || w == nil || w.Membership == presence.MembershipOptional
		}
	}
	static := shown.Membership == presence.MembershipStatic
	return func(want *presence.Target) bool {
		w, named := wantedIn(want, q)
		switch {
		case !named:
			return true
		case w == nil:
			return static // a static member cannot be removed: Plan leaves it
		}
		if w.Paused != shown.Paused || (shown.Paused && w.Reason != shown.Reason) {
			return false
		}
		return static || (penaltyOK && w.Penalty == shown.Penalty)
	}
}

// wantedIn is the desired member of queue q, and whether the desired state names q; queue names
// are matched in any case, as app_queue does.
func wantedIn(want *presence.Target, q string) (*presence.QueueMember, bool) {
	if w, ok := want.Queues[q]; ok {
		return w, true
	}
	for name, w := range want.Queues {
		if strings.EqualFold(name, q) {
			return w, true
		}
	}
	return nil, false
}
