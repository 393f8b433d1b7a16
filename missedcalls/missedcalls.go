// Package missedcalls switches agents who let queue calls go unanswered: after a number of
// queue calls offered to a user and not answered in a row, within a window, the user is
// switched to a configured profile (e.g. "away, missed calls", which pauses them in every
// queue with that reason). Answering a queue call starts the count again; the user comes back
// with any switch of their own.
//
// Asterisk reports a member's unanswered ring with AgentRingNoAnswer and an answered one with
// AgentConnect (class agent), for every queue (Asterisk 22 has no eventwhencalled option any
// more; docs/asterisk.md §2.4); presenced's manager.conf section lets both through
// (deploy/asterisk/manager_presenced.conf). The count is kept in Redis, so that it survives a change of leader:
// a sorted set per user (or per user and queue) of the calls that went unanswered, scored by
// when. A caller who waits while the queue rings the member again and again is one call: the
// set is keyed by the caller's channel.
package missedcalls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// Rules say when unanswered calls switch a user. Rules without a Profile are off: nobody is
// counted or switched.
type Rules struct {
	// Calls is how many queue calls in a row must go unanswered (at least 1).
	Calls int `json:"calls"`
	// Window is how recent they must be: a miss older than Window no longer counts.
	Window time.Duration `json:"window"`
	// Profile is where the user goes; empty turns the rules off.
	Profile string `json:"profile"`
	// PerQueue counts each queue apart (an answered call in one queue does not reset another's
	// count); otherwise the calls of every queue count together.
	PerQueue bool `json:"per_queue"`
	// Queues limits the rule to these queues; empty for every queue.
	Queues []string `json:"queues,omitempty"`
}

// DefaultWindow is Rules.Window when none is given.
const DefaultWindow = time.Hour

// On reports whether the rules switch anybody.
func (r Rules) On() bool { return r.Profile != "" }

// Validate names what is wrong with the rules, with the field names of the configuration
// section they come from (prefix, e.g. "unanswered_calls").
func (r Rules) Validate(prefix string, cat *presence.Catalog) error {
	var problems []string
	if r.Calls < 1 {
		problems = append(problems, fmt.Sprintf("%s.calls: %d; at least one call must go unanswered", prefix, r.Calls))
	}
	if r.Window < 0 {
		problems = append(problems, fmt.Sprintf("%s.window: %v is negative", prefix, r.Window))
	}
	if r.Profile == "" {
		problems = append(problems, prefix+".profile: missing; name the system-wide profile unanswered calls switch to")
	} else if cat != nil {
		if _, ok := cat.Profile(r.Profile); !ok {
			problems = append(problems, fmt.Sprintf("%s.profile: %q is not a system-wide profile", prefix, r.Profile))
		}
	}
	for i, q := range r.Queues {
		if strings.TrimSpace(q) == "" || strings.ContainsAny(q, "\r\n") {
			problems = append(problems, fmt.Sprintf("%s.queues[%d]: %q is not a queue name", prefix, i, q))
		}
	}
	if len(problems) > 0 {
		return &presence.ValidationError{Problems: problems}
	}
	return nil
}

// Engine is what the watcher needs of presence's engine: the users as configured now.
type Engine interface {
	Catalog() *presence.Catalog
}

// Switcher switches a user because of an event, under the triggers' precedence (sticky
// profiles are left alone): trigger.Scheduler.Point.
type Switcher func(ctx context.Context, id presence.UserID, actor string, profile string) (switched bool, reason string, err error)

// Options configure a Watcher.
type Options struct {
	AMI     *ami.Client // a session receiving class agent events
	Redis   redis.UniversalClient
	Prefix  string // Redis key prefix; empty means "presenced:"
	Engine  Engine
	Naming  presence.Naming
	Rules   Rules
	Switch  Switcher
	Logger  *slog.Logger
	Now     func() time.Time
	Timeout time.Duration // of one Redis round trip or switch; 10 s when zero

	// Metrics are counted into; nil for metrics of the watcher's own, registered nowhere.
	Metrics *Metrics
}

// Metrics are the watcher's counters. A daemon registers them whether or not unanswered
// calls switch anybody, so that dashboards find them.
type Metrics struct {
	unanswered *prometheus.CounterVec
	answered   prometheus.Counter
	switches   *prometheus.CounterVec
}

// NewMetrics returns the counters, registered with reg unless it is nil.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		unanswered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_unanswered_calls_total",
			Help: "Queue calls offered to a user and not answered (AgentRingNoAnswer), by queue; counted on the leader.",
		}, []string{"queue"}),
		answered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_unanswered_resets_total",
			Help: "Queue calls answered by a user (AgentConnect), each starting that user's count of unanswered calls again.",
		}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_unanswered_switches_total",
			Help: "Users switched because queue calls went unanswered, by result: switched, skipped (sticky, already there), failed.",
		}, []string{"result"}),
	}
	for _, r := range []string{"switched", "skipped", "failed"} {
		m.switches.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.unanswered, m.answered, m.switches} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("missedcalls: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Watcher counts unanswered queue calls and switches users.
type Watcher struct {
	opts  Options
	log   *slog.Logger
	count *redis.Script

	mu      sync.Mutex
	rules   Rules           // as SetRules last put them in force
	queues  map[string]bool // rules.Queues, lower case; nil for every queue
	indexOf *presence.Catalog
	members map[string]presence.UserID // member interface, lower case → user

	*Metrics
}

// countScript adds an unanswered call (ARGV[3]) at ARGV[1] (ms) to the set KEYS[1], forgets
// those older than the window (ARGV[2] ms), and answers how many are left; when they reach
// ARGV[4] the set is deleted (the count starts again after the switch).
const countScript = `
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then redis.call('DEL', KEYS[1]) end
return n
`

// New returns a watcher; Run starts it.
func New(opts Options) (*Watcher, error) {
	var problems []string
	if opts.AMI == nil {
		problems = append(problems, "missedcalls: Options.AMI is nil")
	}
	if opts.Redis == nil {
		problems = append(problems, "missedcalls: Options.Redis is nil")
	}
	if opts.Engine == nil {
		problems = append(problems, "missedcalls: Options.Engine is nil")
	}
	if opts.Switch == nil {
		problems = append(problems, "missedcalls: Options.Switch is nil")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		opts.Metrics = m
	}
	w := &Watcher{
		opts:    opts,
		log:     opts.Logger.With("component", "missedcalls"),
		count:   redis.NewScript(countScript),
		Metrics: opts.Metrics,
	}
	if err := w.SetRules(opts.Rules); err != nil {
		return nil, err
	}
	return w, nil
}

// SetRules puts rules in force from the next queue event on (a configuration reload): rules
// that do not validate against the engine's catalog change nothing. Counts kept so far stay;
// a changed window or limit applies to the next unanswered call.
func (w *Watcher) SetRules(r Rules) error {
	if r.Window == 0 {
		r.Window = DefaultWindow
	}
	if r.On() {
		if err := r.Validate("unanswered_calls", w.opts.Engine.Catalog()); err != nil {
			return err
		}
	}
	var queues map[string]bool
	if len(r.Queues) > 0 {
		queues = map[string]bool{}
		for _, q := range r.Queues {
			queues[strings.ToLower(q)] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rules, w.queues = r, queues
	return nil
}

// current returns the rules in force and whether they count calls of queue.
func (w *Watcher) current(queue string) (Rules, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rules, w.rules.On() && (w.queues == nil || w.queues[strings.ToLower(queue)])
}

// watchBuffer is how many events the subscription holds; lost events lose only counts.
const watchBuffer = 1024

// Run follows the queue events until ctx ends, also while the rules are off (a reload may turn
// them on). Run it on the leader only (one instance counts).
func (w *Watcher) Run(ctx context.Context) error {
	return amiwatch.Run(ctx, w.opts.AMI, watchBuffer, []string{"AgentRingNoAnswer", "AgentConnect"}, func() {
		w.log.Warn("queue call events were dropped: some unanswered calls are not counted")
	}, func(ev *ami.Message) {
		switch ev.Event() {
		case "AgentRingNoAnswer":
			w.unansweredCall(ctx, ev)
		case "AgentConnect":
			w.answeredCall(ctx, ev)
		}
	})
}

// user is the user whose member interface iface is, in the catalog as it is now.
func (w *Watcher) user(iface string) (presence.UserID, bool) {
	cat := w.opts.Engine.Catalog()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.indexOf != cat {
		w.members = make(map[string]presence.UserID, len(cat.Users))
		for _, u := range cat.Users {
			w.members[strings.ToLower(w.opts.Naming.Interface(u))] = u.ID
		}
		w.indexOf = cat
	}
	id, ok := w.members[strings.ToLower(iface)]
	return id, ok
}

// key is the Redis set counting the user's unanswered calls (of queue, when r counts each
// queue apart).
func (w *Watcher) key(r Rules, id presence.UserID, queue string) string {
	k := w.opts.Prefix + "unanswered:" + string(id)
	if r.PerQueue {
		k += ":" + strings.ToLower(queue)
	}
	return k
}

func (w *Watcher) unansweredCall(ctx context.Context, ev *ami.Message) {
	queue := ev.Get("Queue")
	rules, counts := w.current(queue)
	if !counts {
		return
	}
	id, ok := w.user(ev.Get("Interface"))
	if !ok {
		return
	}
	w.unanswered.WithLabelValues(queue).Inc()
	call := ev.Get("Uniqueid") // the caller's channel: the queue's retries of one call are one call
	if call == "" {
		call = ev.Get("Channel")
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	key := w.key(rules, id, queue)
	n, err := w.count.Run(ctx, w.opts.Redis, []string{key},
		w.opts.Now().UnixMilli(), rules.Window.Milliseconds(), queue+"|"+call, rules.Calls).Int()
	if err != nil {
		w.log.Error("unanswered queue call not counted", "user", id, "queue", queue, "err", presence.StoreError(err, "count unanswered calls", key))
		return
	}
	w.log.Info("queue call unanswered", "user", id, "queue", queue, "in_a_row", n, "limit", rules.Calls)
	if n < rules.Calls {
		return
	}
	actor := fmt.Sprintf("%d unanswered queue calls", n)
	if rules.PerQueue || len(rules.Queues) == 1 {
		actor = fmt.Sprintf("%d unanswered calls from queue %s", n, queue)
	}
	switched, reason, err := w.opts.Switch(ctx, id, actor, rules.Profile)
	switch {
	case err != nil:
		w.switches.WithLabelValues("failed").Inc()
		w.log.Error("switch after unanswered queue calls failed", "user", id, "profile", rules.Profile, "err", err)
	case switched:
		w.switches.WithLabelValues("switched").Inc()
		w.log.Info("switched after unanswered queue calls", "user", id, "profile", rules.Profile, "why", actor)
	default:
		w.switches.WithLabelValues("skipped").Inc()
		w.log.Info("unanswered queue calls switch nobody", "user", id, "profile", rules.Profile, "reason", reason)
	}
}

func (w *Watcher) answeredCall(ctx context.Context, ev *ami.Message) {
	queue := ev.Get("Queue")
	rules, counts := w.current(queue)
	if !counts {
		return
	}
	id, ok := w.user(ev.Get("Interface"))
	if !ok {
		return
	}
	w.answered.Inc()
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	key := w.key(rules, id, queue)
	if err := w.opts.Redis.Del(ctx, key).Err(); err != nil {
		w.log.Error("answered queue call: count not reset", "user", id, "queue", queue, "err", presence.StoreError(err, "reset unanswered calls", key))
	}
}
