// Package amiconcern is what the concerns that keep PBX state through AMI share: their
// options and the validation that names the field, the bound on the AMI actions they have in
// flight, and the apply loop that sends one user's operations at once and counts and logs each
// outcome. A concern (package blf, package astdb) keeps only what differs: how it observes, and
// how it applies one operation. Package queue, whose options and apply differ, shares the
// validation (Check) and the default bound.
package amiconcern

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/inflight"
	"github.com/presenced/presenced/internal/promshare"
	"github.com/presenced/presenced/presence"
)

// Defaults applied by New to zero fields of Options.
const (
	// DefaultMaxInFlight bounds the AMI actions one concern has waiting for their reply.
	DefaultMaxInFlight = 64
	// DefaultSmallBatch is the most users an observation reads thing by thing rather than
	// listing everything once.
	DefaultSmallBatch = 4
)

// Options configures an AMI-backed concern. The concerns' own Options are this type; their
// doc comments say what each needs of the AMI user and what a small batch reads.
type Options struct {
	// AMI is the client the concern acts through; it may be shared with other concerns.
	// Required.
	AMI *ami.Client
	// Logger receives per-operation detail at Debug. nil discards.
	Logger *slog.Logger
	// Registerer receives the concern's counter of operations (Spec.Counter). nil means no
	// metrics.
	Registerer prometheus.Registerer
	// MaxInFlight bounds the AMI actions the concern has waiting for a reply at once, over all
	// concurrent Observe and Apply calls. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Reader, when set, is a second client the concern observes through: Asterisk serves one
	// session's actions one at a time, so large lists on the session that carries the changes
	// would hold them up. nil observes through AMI.
	Reader *ami.Client
	// Writer, when set, is the client the concern sends its changes through; AMI still
	// carries its events. Asterisk answers a session's actions in line with the events it
	// writes to that session, so during a burst (a mass switch's thousands of queue events) the
	// changes' replies on the events connection wait behind them. nil changes through AMI.
	Writer *ami.Client
	// SmallBatch is the most users an observation reads thing by thing (what each concern
	// reads says its Options); larger batches list everything once. 0 means
	// DefaultSmallBatch.
	SmallBatch int
}

// Check validates what every AMI-backed concern's options hold, naming the field: client is
// Options.AMI, maxInFlight Options.MaxInFlight. name starts the error ("blf: Options.AMI is
// required").
func Check(name string, client *ami.Client, maxInFlight int) error {
	if client == nil {
		return fmt.Errorf("%s: Options.AMI is required", name)
	}
	if maxInFlight < 0 {
		return fmt.Errorf("%s: Options.MaxInFlight must not be negative, got %d", name, maxInFlight)
	}
	return nil
}

func (o Options) validate(name string) error {
	if err := Check(name, o.AMI, o.MaxInFlight); err != nil {
		return err
	}
	if o.SmallBatch < 0 {
		return fmt.Errorf("%s: Options.SmallBatch must not be negative, got %d", name, o.SmallBatch)
	}
	return nil
}

// Spec is what makes a concern this concern.
type Spec struct {
	// Name is presence.Concern's Name, the "component" of its log lines and the start of its
	// errors.
	Name string
	// Kinds are the operation kinds it applies.
	Kinds []presence.OpKind
	// Counter and Help name and describe its own counter of operations, by kind and result.
	//
	// Deprecated: presenced_operations_total{concern} counts the same outcomes; the
	// concerns' own counters go in the next release.
	Counter, Help string
}

// Base is the part of an AMI-backed concern that is the same for all; the concern holds one
// and adds how it observes and applies. It is safe for concurrent use.
type Base struct {
	spec Spec
	// AMI carries the events; Writer the changes and Reader the observations (AMI when no
	// other client is configured).
	AMI, Writer, Reader *ami.Client
	// Log is the concern's logger, its component named.
	Log *slog.Logger
	// SmallBatch is Options.SmallBatch, its default filled in.
	SmallBatch int

	sem inflight.Limit
	met *counter
}

// New validates o and returns the Base of the concern s.
func New(s Spec, o Options) (*Base, error) {
	if err := o.validate(s.Name); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newCounter(o.Registerer, s.Counter, s.Help, s.Kinds)
	if err != nil {
		return nil, fmt.Errorf("%s: Options.Registerer: %w", s.Name, err)
	}
	return &Base{
		spec:       s,
		AMI:        o.AMI,
		Reader:     cmp.Or(o.Reader, o.AMI),
		Writer:     cmp.Or(o.Writer, o.AMI),
		Log:        log.With("component", s.Name),
		SmallBatch: cmp.Or(o.SmallBatch, DefaultSmallBatch),
		sem:        inflight.New(cmp.Or(o.MaxInFlight, DefaultMaxInFlight)),
		met:        met,
	}, nil
}

// Name is the concern's name (presence.Concern).
func (b *Base) Name() string { return b.spec.Name }

// Kinds are the operation kinds the concern applies (presence.Concern).
func (b *Base) Kinds() []presence.OpKind { return slices.Clone(b.spec.Kinds) }

// Apply sends u's operations at once with apply (presence.ApplyAll: the operations of one
// plan name distinct things) and returns one outcome per operation, in order, each counted and
// logged at Debug. Operations are independent: one that fails does not stop the others.
func (b *Base) Apply(ctx context.Context, u *presence.User, ops []presence.Op, apply func(context.Context, presence.Op) presence.Outcome) []presence.Outcome {
	out := presence.ApplyAll(ops, func(op presence.Op) presence.Outcome { return apply(ctx, op) })
	for i, op := range ops {
		b.met.count(op.Kind, out[i].Result)
		b.Log.LogAttrs(ctx, slog.LevelDebug, "apply", slog.String("user", userID(u)),
			slog.String("op", b.describe(op)), slog.String("result", string(out[i].Result)),
			slog.String("error", out[i].Error))
	}
	return out
}

// Do sends the change a over Writer within the bound on actions in flight.
func (b *Base) Do(ctx context.Context, a ami.Action) (*ami.Message, error) {
	if err := b.Acquire(ctx); err != nil {
		return nil, err
	}
	defer b.Release()
	return b.Writer.Do(ctx, a)
}

// Acquire takes one of the MaxInFlight slots, waiting while all are taken; Release gives it
// back.
func (b *Base) Acquire(ctx context.Context) error { return b.sem.Acquire(ctx) }

// Release gives back a slot Acquire took.
func (b *Base) Release() { b.sem.Release() }

// Unsupported is the outcome of an operation of a kind the concern does not apply.
func (b *Base) Unsupported(op presence.Op) presence.Outcome {
	return presence.Failed(op, fmt.Errorf("%s: cannot apply %s operations", b.spec.Name, op.Kind))
}

// describe is op.String() for the concern's own kinds, without its panics on an operation
// that lacks what its kind needs; other kinds are shown by kind and key.
func (b *Base) describe(op presence.Op) string {
	if slices.Contains(b.spec.Kinds, op.Kind) && complete(op) {
		return op.String()
	}
	return string(op.Kind) + " " + op.Key
}

// complete reports whether op holds what op.String() reads for its kind.
func complete(op presence.Op) bool {
	switch op.Kind {
	case presence.OpQueueAdd, presence.OpQueueRemove, presence.OpQueuePause, presence.OpQueuePenalty:
		return op.Member != nil
	case presence.OpPresence:
		return op.Presence != nil
	case presence.OpWebhook:
		return op.Webhook != nil
	}
	return true
}

func userID(u *presence.User) string {
	if u == nil {
		return ""
	}
	return string(u.ID)
}

// counter counts outcomes by kind and result; a nil *counter counts nothing.
type counter struct {
	ops   *prometheus.CounterVec
	kinds []presence.OpKind
}

// newCounter registers name (help) on reg with labels kind and result, the series of every
// kind and result made at 0. A second concern on the same registry shares the counter. A nil
// reg gives a nil counter.
func newCounter(reg prometheus.Registerer, name, help string, kinds []presence.OpKind) (*counter, error) {
	if reg == nil {
		return nil, nil
	}
	ops, err := promshare.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind", "result"}))
	if err != nil {
		return nil, err
	}
	for _, k := range kinds {
		for _, r := range []presence.Result{presence.ResultApplied, presence.ResultUnchanged, presence.ResultFailed} {
			ops.WithLabelValues(string(k), string(r))
		}
	}
	return &counter{ops: ops, kinds: kinds}, nil
}

// count counts one outcome. Kinds the concern does not apply (a misrouted operation) count as
// "other", which keeps the label set bounded.
func (c *counter) count(k presence.OpKind, r presence.Result) {
	if c == nil {
		return
	}
	kind := "other"
	if slices.Contains(c.kinds, k) {
		kind = string(k)
	}
	c.ops.WithLabelValues(kind, string(r)).Inc()
}
