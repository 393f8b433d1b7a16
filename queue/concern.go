package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiconcern"
	"github.com/presenced/presenced/internal/inflight"
	"github.com/presenced/presenced/presence"
)

// Defaults applied by New to zero fields of Options.
const (
	// DefaultMaxInFlight is the most AMI actions one Concern has waiting for their reply on
	// each of its sessions, however fast Asterisk answers. Within it, the number follows
	// MaxWait.
	DefaultMaxInFlight = 512
	// DefaultMaxWait is how long, at most, an action should wait in line in Asterisk behind the
	// concern's other actions on its session. Asterisk serves a session's actions one at a time
	// and a queue change costs it from a fraction of a millisecond to tens (with
	// persistentmembers it rewrites the queue's member list: about 25 ms with 10,000 members),
	// so no count of actions fits every site: 64 on each session made a mass switch of 5,000
	// users half as fast as 512, and 512 put a switch seconds behind a wave of repairs into
	// large queues (docs/BENCHMARKS.md, sixth and seventh rounds). The concern measures the
	// time per action from the replies and keeps about MaxWait of them in flight.
	DefaultMaxWait = time.Second
	// minInFlight is the fewest actions kept in flight on a session, however slow Asterisk
	// is (at most MaxInFlight).
	minInFlight = 8
	// DefaultCoalesceWindow is how old an observation may be for Apply to trust it when it
	// replaces per-queue pauses by one QueuePause for all queues.
	DefaultCoalesceWindow = 15 * time.Second
	// DefaultKnownFor is how long a read of an interface's members stands for the PBX while
	// the concern's watch shows nothing it did not expect (Options.KnownFor). The periodic
	// full check (5 minutes by default) reads every queue again well within it.
	DefaultKnownFor = 10 * time.Minute
)

// Options configures a Concern.
type Options struct {
	// AMI is the client the concern speaks through; required. It is shared: the concern
	// neither runs nor stops it.
	AMI *ami.Client
	// Logger receives per-action detail at Debug and surprises at Warn. nil discards.
	Logger *slog.Logger
	// Registerer receives the concern's metrics (presenced_queue_*). nil means no metrics.
	Registerer prometheus.Registerer
	// MaxInFlight bounds the actions the concern has sent and not yet got a reply for on each
	// of its sessions (the reads, and every write session), over all concurrent Apply and
	// Observe calls. Within it the bound follows MaxWait. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// MaxWait is how long an action should wait in line on a session at most: the concern
	// keeps as many actions in flight on each session as Asterisk answers within MaxWait, as
	// measured from the replies, so a mass switch pipelines over its AMI sessions while a
	// switch sent meanwhile, and the session's keepalive Ping, wait about MaxWait behind it.
	// 0 means DefaultMaxWait.
	MaxWait time.Duration
	// CoalesceWindow is how old the last observation may be for Apply to rely on it when it
	// pauses an interface in all its queues with one action (see Concern.Apply). 0 means
	// DefaultCoalesceWindow; a negative value turns coalescing off.
	CoalesceWindow time.Duration
	// KnownFor is how old a read of an interface's members may be for Observe to answer from
	// it, followed by the concern's own changes and by its events, instead of reading the
	// interface again: only while the concern's Watch runs, and while nothing the events
	// showed (or an action that failed) says otherwise. 0 means DefaultKnownFor; a negative
	// value makes Observe always read.
	KnownFor time.Duration
	// Reader, when set, is a second client the concern reads through (QueueStatus): Asterisk
	// serves one session's actions one at a time, so a large QueueStatus on the session that
	// carries the changes would hold them up. nil reads through AMI.
	Reader *ami.Client
	// Writers are further sessions for changes, besides AMI. Asterisk serves each session on a
	// thread of its own, and a queue change costs it mostly work under that queue's lock (with
	// persistentmembers, rewriting the queue's member list in astdb), so changes spread over
	// sessions are applied partly in parallel: QueueRemoves over 4 sessions went about 1.7
	// times as fast as over one (docs/BENCHMARKS.md). An interface's changes always go over the
	// same session, so they keep their order. They must be gated like AMI (only the leader
	// writes).
	Writers []*ami.Client
}

// DefaultOptions returns Options with every default filled in (AMI is still to be set).
func DefaultOptions() Options {
	return Options{MaxInFlight: DefaultMaxInFlight, MaxWait: DefaultMaxWait, CoalesceWindow: DefaultCoalesceWindow, KnownFor: DefaultKnownFor}
}

func (o Options) validate() error {
	if err := amiconcern.Check("queue", o.AMI, o.MaxInFlight); err != nil {
		return err
	}
	if o.MaxWait < 0 {
		return fmt.Errorf("queue: Options.MaxWait must not be negative, got %v", o.MaxWait)
	}
	if slices.Contains(o.Writers, nil) {
		return errors.New("queue: Options.Writers holds a nil client")
	}
	return nil
}

// Concern is the queue concern: it implements presence.Concern for queue membership, pause
// state and penalties. Create one with New; its methods are safe for concurrent use.
type Concern struct {
	ami     *ami.Client
	writers []writeSession // ami, then Options.Writers: an interface's changes go over one
	reader  *ami.Client    // reads (QueueStatus); ami when no second client is configured
	log     *slog.Logger
	met     *metrics
	window  time.Duration
	// knownFor is Options.KnownFor; not positive: Observe always reads.
	knownFor time.Duration
	sem      *inflight.Paced // reads: one slot per action in flight
	mem      *memberships
	size     atomic.Pointer[pbxSize] // of the last read of every queue
	// survey says whether Survey reads every queue: the last full check (Survey.Fill) wanted
	// enough interfaces to read every queue rather than one by one.
	survey atomic.Bool
}

// pbxSize is how big a read of every queue was: what a read of one interface is weighed
// against.
type pbxSize struct {
	queues, members, interfaces int
}

// perMember reports whether reading n interfaces one by one (QueueStatus with Member: one
// QueueParams per queue and the interface's members each) costs Asterisk less than one read of
// every queue, judged by the size of the last such read; the one-by-one reads are weighed
// double, for the round trips they add. Unknown size: read every queue.
func (c *Concern) perMember(n int) bool {
	s := c.size.Load()
	if s == nil || s.interfaces == 0 {
		return false
	}
	one := s.queues + (s.members+s.interfaces-1)/s.interfaces + 1
	all := s.queues + s.members + 1
	return 2*n*one <= all
}

var (
	_ presence.Concern  = (*Concern)(nil)
	_ presence.Surveyor = (*Concern)(nil)
)

// New returns a Concern speaking through opts.AMI. Errors name the offending Options field.
func New(opts Options) (*Concern, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	def := DefaultOptions()
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = def.MaxInFlight
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = def.MaxWait
	}
	if opts.CoalesceWindow == 0 {
		opts.CoalesceWindow = def.CoalesceWindow
	}
	if opts.KnownFor == 0 {
		opts.KnownFor = def.KnownFor
	}
	paced := func() *inflight.Paced {
		return inflight.NewPaced(inflight.PacedOptions{Wait: opts.MaxWait, Min: min(minInFlight, opts.MaxInFlight), Max: opts.MaxInFlight})
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	var writers []writeSession
	for _, w := range append([]*ami.Client{opts.AMI}, opts.Writers...) {
		writers = append(writers, writeSession{client: w, slots: paced()})
	}
	sem := paced()
	if opts.Reader == nil {
		sem = writers[0].slots // the reads go over the main session too: one bound for it
	}
	return &Concern{
		ami:      opts.AMI,
		writers:  writers,
		reader:   cmp.Or(opts.Reader, opts.AMI),
		log:      log.With("component", "queue"),
		met:      met,
		window:   opts.CoalesceWindow,
		knownFor: opts.KnownFor,
		sem:      sem,
		mem:      newMemberships(),
	}, nil
}

// Name returns "queue".
func (c *Concern) Name() string { return "queue" }

// Kinds returns the operation kinds the concern applies: queue_add, queue_remove,
// queue_pause and queue_penalty.
func (c *Concern) Kinds() []presence.OpKind {
	return []presence.OpKind{presence.OpQueueAdd, presence.OpQueueRemove, presence.OpQueuePause, presence.OpQueuePenalty}
}

// Observe reads every queue with one QueueStatus (or, when that costs Asterisk less than
// reading the few users' interfaces one by one, judged by the size of the last read of every
// queue, one QueueStatus per interface: perMember), and records in have[u].Queues, for every
// queue want[u].Queues names (nil entries included), the member whose interface is
// want[u].Interface (compared case-insensitively, as Asterisk does), or nil when the interface
// is not in that queue. It also remembers which queues every interface is in and how, for
// Apply and for the next Observe: an interface the concern knows (memberships.known: read
// since its watch follows the events, changed since only by the concern itself or as the
// events showed) is not read again, unless presence.ReadNow(ctx) or Options.KnownFor says so.
func (c *Concern) Observe(ctx context.Context, want, have map[presence.UserID]*presence.Target) error {
	start := time.Now()
	if !presence.ReadNow(ctx) {
		want = c.fillKnown(start, want, have)
	}
	ifaces := wantedInterfaces(want)
	if len(ifaces) == 0 {
		fillQueues(nil, want, have)
		return nil
	}
	var (
		members map[string]map[string]*ami.QueueMember // interface (lower case) → queue → member
		err     error
	)
	perMember := c.perMember(len(ifaces))
	if perMember {
		conn := c.reader.Status().Since
		seq := c.mem.mark()
		members, err = c.readMembers(ctx, ifaces)
		if err != nil {
			return fmt.Errorf("queue: observe: %w", err)
		}
		in := make(map[string]inQueues, len(ifaces))
		for k := range ifaces {
			in[k] = inQueues{}
			for q, m := range members[k] {
				in[k][q] = member(m)
			}
		}
		c.mem.installFor(start, conn, seq, in)
		c.met.observeDuration.Observe(time.Since(start).Seconds())
	} else if members, err = c.readAll(ctx); err != nil {
		return err
	}
	fillQueues(members, want, have)
	c.log.Debug("queues observed", "interfaces", len(members), "users", len(want), "one_by_one", perMember, "duration", time.Since(start))
	return nil
}

// fillKnown records in have the queues of the users of want whose interface the concern knows
// (memberships.known), and returns the users left to read.
func (c *Concern) fillKnown(now time.Time, want, have map[presence.UserID]*presence.Target) map[presence.UserID]*presence.Target {
	if c.knownFor <= 0 {
		return want
	}
	st := c.reader.Status()
	if !st.LoggedIn {
		return want
	}
	rest := make(map[presence.UserID]*presence.Target, len(want))
	known := 0
	for id, w := range want {
		if w == nil || w.Interface == "" || len(w.Queues) == 0 {
			rest[id] = w
			continue
		}
		in, ok := c.mem.known(w.Interface, w.Queues, now, c.knownFor, st.Since)
		if !ok {
			rest[id] = w
			continue
		}
		h := targetFor(have, id, w)
		for q := range w.Queues {
			h.Queues[q] = in[q] // nil: not in q
		}
		known++
	}
	c.met.observedKnown.Add(float64(known))
	return rest
}

// Survey implements presence.Surveyor: when the last observation of many users read every
// queue, it reads every queue now (as Observe would), for a full check to fill its users'
// observations from while it reads their states; otherwise it reads nothing and Fill observes.
func (c *Concern) Survey(ctx context.Context) (presence.Survey, error) {
	if !c.survey.Load() {
		return &survey{c: c}, nil
	}
	members, err := c.readAll(ctx)
	if err != nil {
		return nil, err
	}
	return &survey{c: c, members: members, read: true}, nil
}

// survey is what Survey read: every queue's members (read) or nothing.
type survey struct {
	c       *Concern
	members map[string]map[string]*ami.QueueMember
	read    bool
}

// Fill implements presence.Survey.
func (s *survey) Fill(ctx context.Context, want, have map[presence.UserID]*presence.Target) error {
	// The next full check surveys when this one wants enough interfaces to read every queue.
	ifaces := wantedInterfaces(want)
	s.c.survey.Store(len(ifaces) > 0 && !s.c.perMember(len(ifaces)))
	if !s.read {
		return s.c.Observe(presence.WithReadNow(ctx), want, have)
	}
	fillQueues(s.members, want, have)
	return nil
}

// wantedInterfaces returns the interfaces of the users of want who want queues: lower case →
// as the desired state names it.
func wantedInterfaces(want map[presence.UserID]*presence.Target) map[string]string {
	ifaces := map[string]string{}
	for _, w := range want {
		if w != nil && w.Interface != "" && len(w.Queues) > 0 {
			ifaces[key(w.Interface)] = w.Interface
		}
	}
	return ifaces
}

// readAll reads every queue with one QueueStatus, remembers which queues every interface is
// in (for Apply) and how big the read was (perMember), and returns the members by interface
// (lower case) and queue.
func (c *Concern) readAll(ctx context.Context) (map[string]map[string]*ami.QueueMember, error) {
	start := time.Now()
	conn := c.reader.Status().Since
	seq := c.mem.mark()
	l, err := c.list(ctx, ami.QueueStatus{})
	if err != nil {
		return nil, fmt.Errorf("queue: observe: %w", err)
	}
	st := ami.ParseQueueStatus(l)
	c.met.observeDuration.Observe(time.Since(start).Seconds())
	c.met.membersObserved.Set(float64(len(st.Members)))
	members := make(map[string]map[string]*ami.QueueMember)
	in := make(map[string]inQueues) // interface (lower case) → queues
	for i := range st.Members {
		m := &st.Members[i]
		k := key(m.Location)
		if members[k] == nil {
			members[k] = map[string]*ami.QueueMember{}
			in[k] = inQueues{}
		}
		members[k][m.Queue] = m
		in[k][m.Queue] = member(m)
	}
	c.mem.install(start, conn, seq, in)
	c.size.Store(&pbxSize{queues: len(st.Params), members: len(st.Members), interfaces: len(members)})
	return members, nil
}

// fillQueues records in have, for every user of want, the members of the queues they want
// (nil where their interface is not in the queue).
func fillQueues(members map[string]map[string]*ami.QueueMember, want, have map[presence.UserID]*presence.Target) {
	for id, w := range want {
		if w == nil {
			continue
		}
		h := targetFor(have, id, w)
		var mine map[string]*ami.QueueMember
		if w.Interface != "" {
			mine = members[key(w.Interface)]
		}
		for q := range w.Queues {
			h.Queues[q] = member(mine[q])
		}
	}
}

// targetFor is have[id], made if missing, with its Queues map made and the interface of w, for
// an observation to record id's queues in.
func targetFor(have map[presence.UserID]*presence.Target, id presence.UserID, w *presence.Target) *presence.Target {
	h := have[id]
	if h == nil {
		h = presence.NewTarget()
		have[id] = h
	}
	if h.Queues == nil {
		h.Queues = map[string]*presence.QueueMember{}
	}
	h.Interface = w.Interface
	return h
}

// member is m in presenced's terms; nil for nil.
func member(m *ami.QueueMember) *presence.QueueMember {
	if m == nil {
		return nil
	}
	return &presence.QueueMember{
		Interface:      m.Location,
		MemberName:     m.Name,
		StateInterface: m.StateInterface,
		Penalty:        m.Penalty,
		Paused:         m.Paused,
		Reason:         m.PausedReason,
		Membership:     membership(m.Membership),
	}
}

// membership is the Membership of a member whose membership AMI reports as kind ("static",
// "dynamic" or "realtime"): a static member is queues.conf's, the others presenced's.
func membership(kind string) presence.Membership {
	if strings.EqualFold(kind, "static") {
		return presence.MembershipStatic
	}
	return presence.MembershipManaged
}

// readMembers reads the given interfaces (lower case → as written) one by one, at once:
// QueueStatus with Member, which Asterisk matches exactly (case and all) against each
// member's interface or name, so the members are kept by interface, compared case-insensitively.
// A member whose interface differs from presenced's own only in case is not found this way;
// the next read of every queue (the periodic full check reads everyone) sees it.
func (c *Concern) readMembers(ctx context.Context, ifaces map[string]string) (map[string]map[string]*ami.QueueMember, error) {
	var (
		mu   sync.Mutex
		out  = make(map[string]map[string]*ami.QueueMember, len(ifaces))
		errs []error
		wg   sync.WaitGroup
	)
	for k, iface := range ifaces {
		wg.Go(func() {
			l, err := c.list(ctx, ami.QueueStatus{Member: iface})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("member %s: %w", iface, err))
				return
			}
			st := ami.ParseQueueStatus(l)
			for i := range st.Members {
				m := &st.Members[i]
				if key(m.Location) != k {
					continue // a member whose name is this interface
				}
				if out[k] == nil {
					out[k] = map[string]*ami.QueueMember{}
				}
				out[k][m.Queue] = m
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// writeSession is a session the concern changes the PBX over, with its own bound on the
// actions in flight on it (Options.MaxInFlight and MaxWait).
type writeSession struct {
	client *ami.Client
	slots  *inflight.Paced
}

// acquire takes one of the slots of l.
func acquire(ctx context.Context, l *inflight.Paced) error {
	if err := ctx.Err(); err != nil { // a caller that gave up starts nothing
		return fmt.Errorf("queue: %w", err)
	}
	if err := l.Acquire(ctx); err != nil {
		return fmt.Errorf("queue: waiting for an AMI slot: %w", err)
	}
	return nil
}

// send sends a, holding a slot while it is in flight, and counts it. unchanged reports that
// Asterisk refused it with one of the idempotent answers given.
func (c *Concern) send(ctx context.Context, a ami.Action, idempotent ...string) (unchanged bool, err error) {
	w := c.writer(a)
	if err := acquire(ctx, w.slots); err != nil {
		c.met.actions.WithLabelValues(a.ActionName(), resultTimeout).Inc()
		return false, err
	}
	_, err = w.client.Do(ctx, a)
	w.slots.Release(answered(err))
	if msg, ok := ami.ResponseMessage(err); ok {
		for _, idem := range idempotent {
			if strings.EqualFold(strings.TrimSpace(msg), idem) {
				unchanged = true
			}
		}
	}
	c.met.actions.WithLabelValues(a.ActionName(), resultOf(err, unchanged)).Inc()
	return unchanged, err
}

// answered reports whether err, an action's outcome, means Asterisk answered it: success, or
// an error response of its own.
func answered(err error) bool {
	var re *ami.ResponseError
	return err == nil || errors.As(err, &re)
}

// writer is the session the change a goes over: always the same for one interface.
func (c *Concern) writer(a ami.Action) writeSession {
	if len(c.writers) == 1 {
		return c.writers[0]
	}
	var iface string
	switch a := a.(type) {
	case ami.QueueAdd:
		iface = a.Interface
	case ami.QueueRemove:
		iface = a.Interface
	case ami.QueuePause:
		iface = a.Interface
	case ami.QueuePenalty:
		iface = a.Interface
	default:
		return c.writers[0]
	}
	h := fnv.New32a()
	h.Write([]byte(key(iface)))
	return c.writers[h.Sum32()%uint32(len(c.writers))]
}

// list sends the list action a like send, through the reading client.
func (c *Concern) list(ctx context.Context, a ami.Action) (*ami.List, error) {
	if err := acquire(ctx, c.sem); err != nil {
		c.met.actions.WithLabelValues(a.ActionName(), resultTimeout).Inc()
		return nil, err
	}
	l, err := c.reader.List(ctx, a)
	c.sem.Release(answered(err))
	c.met.actions.WithLabelValues(a.ActionName(), resultOf(err, false)).Inc()
	return l, err
}
