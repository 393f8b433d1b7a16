package queue

import (
	"context"
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
func (c *Concern) Watch(ctx context.Context, w presence.Watch) error {
	members := map[string]presence.UserID{} // member interface, lower case → user
	for _, u := range w.Catalog.Users {
		members[strings.ToLower(w.Naming.Interface(u))] = u.ID
	}
	return amiwatch.Run(ctx, c.ami, watchBuffer, func() { w.All("queue events were dropped") }, func(ev *ami.Message) {
		switch ev.Event() {
		case "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPenalty":
			if id, ok := members[strings.ToLower(ev.Get("Interface"))]; ok {
				w.Changed(id)
			}
		case "Reload":
			if m := strings.ToLower(ev.Get("Module")); m == "" || strings.Contains(m, "app_queue") || strings.Contains(m, "all") {
				w.All("reload of " + orEverything(ev.Get("Module")))
			}
		}
	})
}

func orEverything(module string) string {
	if module == "" {
		return "everything"
	}
	return module
}
