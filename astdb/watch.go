package astdb

import (
	"context"
	"strings"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// watchBuffer is how many events the concern's subscription holds before it overflows.
const watchBuffer = 256

var _ presence.Watcher = (*Concern)(nil)

// Watch implements presence.Watcher. astdb sends no events when a key changes (the periodic
// check finds those); a reload of the dialplan (pbx_config, with clearglobalvars=yes) may clear
// globals, and says nothing of whose: it asks for everyone. A plain "dialplan reload" sends no
// event at all; the periodic check covers it too.
func (c *Concern) Watch(ctx context.Context, w presence.Watch) error {
	return amiwatch.Run(ctx, c.base.AMI, watchBuffer, []string{"Reload"}, func() { w.All("dialplan events were dropped") }, func(ev *ami.Message) {
		if ev.Event() == "Reload" && strings.Contains(strings.ToLower(ev.Get("Module")), "pbx_config") {
			w.All("reload of " + ev.Get("Module"))
		}
	})
}
