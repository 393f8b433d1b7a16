package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Relay carries the engine's work from the instances that do not run it (standbys) to the one
// that does (the leader), through Redis, so that every instance serves the whole API while one
// writes to Asterisk. A standby's Switch, Enforce, Check or CheckSoon becomes an entry of one
// Redis stream; the leader's engine reads the stream while it runs, claims each entry (so it
// runs at most once, also across a change of leader), carries it out like its own call, and
// answers on a list the caller waits on:
//
//	<prefix>relay:<asterisk>             stream of requests (JSON), trimmed to about 10,000
//	<prefix>relay:<asterisk>:claim:<id>  the claim of one request (60 s)
//	<prefix>relay:<asterisk>:reply:<id>  list holding its answer (60 s)
//
// A request the leader has not answered by its deadline fails; one made while no instance
// leads for longer than EngineOptions.RunWait fails with ErrNoLeader.
type Relay struct {
	rdb      redis.UniversalClient
	stream   string
	instance string
	leader   func(ctx context.Context) (bool, error)
	confirm  func(ctx context.Context, op string, write func(redis.Cmdable) error) error
	timeout  time.Duration
	log      *slog.Logger
}

// RelayOptions configures a Relay.
type RelayOptions struct {
	// Redis is the state store's client; required.
	Redis redis.UniversalClient
	// Prefix starts the keys; empty means "presenced:". Asterisk names the PBX whose leader
	// carries the requests out (the leader election's key); required.
	Prefix, Asterisk string
	// Instance names this instance in the requests (logs); required.
	Instance string
	// LeaderExists reports whether some instance holds the leadership now; required.
	LeaderExists func(ctx context.Context) (bool, error)
	// Confirm, when set, runs the writes of a request and of its answer and waits until they
	// would survive a failover of Redis (Redis.Confirmed); nil writes without waiting.
	Confirm func(ctx context.Context, op string, write func(redis.Cmdable) error) error
	// Timeout bounds a request that has no deadline of its own; zero means 30 s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// ErrNoLeader means a request could not be carried out because no instance led for too long.
var ErrNoLeader = errors.New("presence: no instance leads: nobody writes to Asterisk now")

// NewRelay checks the options and returns a relay.
func NewRelay(opts RelayOptions) (*Relay, error) {
	switch {
	case opts.Redis == nil:
		return nil, errors.New("presence: RelayOptions.Redis is required")
	case opts.Asterisk == "" || opts.Instance == "":
		return nil, errors.New("presence: RelayOptions.Asterisk and Instance are required")
	case opts.LeaderExists == nil:
		return nil, errors.New("presence: RelayOptions.LeaderExists is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Confirm == nil {
		opts.Confirm = func(_ context.Context, _ string, write func(redis.Cmdable) error) error { return write(opts.Redis) }
	}
	return &Relay{rdb: opts.Redis, stream: opts.Prefix + "relay:" + opts.Asterisk, instance: opts.Instance,
		leader: opts.LeaderExists, confirm: opts.Confirm, timeout: opts.Timeout, log: opts.Logger}, nil
}

// relayOp is an operation a relay carries: the engine's call a standby hands to the leader.
type relayOp string

// The operations a relay carries.
const (
	relaySwitch    relayOp = "switch"    // Engine.Switch
	relayEnforce   relayOp = "reconcile" // Engine.Enforce
	relayCheck     relayOp = "repair"    // Engine.Check
	relayCheckSoon relayOp = "touch"     // Engine.CheckSoon
)

// relayRequest is one request in the stream.
type relayRequest struct {
	ID       string         `json:"id"`
	Op       relayOp        `json:"op"`
	Switch   *SwitchRequest `json:"switch,omitempty"`
	User     UserID         `json:"user,omitempty"`
	Actor    string         `json:"actor,omitempty"`
	Deadline time.Time      `json:"deadline"`
	From     string         `json:"from"`
}

// relayReply is the answer to one request.
type relayReply struct {
	Result *SwitchResult `json:"result,omitempty"`
	State  *UserState    `json:"state,omitempty"` // the result's State, which SwitchResult does not encode
	Error  *relayError   `json:"error,omitempty"`
}

// relayError is an error as it crosses the relay: a code the caller turns back into the
// engine's error of that kind.
type relayError struct {
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Problems []string `json:"problems,omitempty"`
}

func (r *Relay) claimKey(id string) string { return r.stream + ":claim:" + id }
func (r *Relay) replyKey(id string) string { return r.stream + ":reply:" + id }

// call sends a request and waits for its answer, or its deadline, or ErrNoLeader when no
// instance leads for longer than noLeader.
func (r *Relay) call(ctx context.Context, req relayRequest, noLeader time.Duration) (*SwitchResult, error) {
	var b [8]byte
	rand.Read(b[:])
	req.ID, req.From = hex.EncodeToString(b[:]), r.instance
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(r.timeout)
	}
	req.Deadline = deadline
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("presence: relay: encode %s: %w", req.Op, err)
	}
	err = r.confirm(ctx, "presence: relay "+string(req.Op), func(c redis.Cmdable) error {
		return c.XAdd(ctx, &redis.XAddArgs{Stream: r.stream, MaxLen: 10000, Approx: true,
			Values: map[string]any{"request": string(raw)}}).Err()
	})
	if err != nil {
		return nil, StoreError(err, "presence: relay "+string(req.Op), r.stream)
	}
	if req.Op == relayCheckSoon {
		return nil, nil // nobody waits for a touch
	}
	var leaderless time.Time
	for {
		wait := min(time.Until(deadline), time.Second)
		if wait <= 0 {
			return nil, fmt.Errorf("presence: relay %s: the leader did not answer in time: %w", req.Op, context.DeadlineExceeded)
		}
		vals, err := r.rdb.BLPop(ctx, wait, r.replyKey(req.ID)).Result()
		switch {
		case err == nil && len(vals) == 2:
			var rep relayReply
			if err := json.Unmarshal([]byte(vals[1]), &rep); err != nil {
				return nil, fmt.Errorf("presence: relay %s: unreadable answer: %w", req.Op, err)
			}
			if rep.Error != nil {
				return nil, rep.Error.err()
			}
			if rep.Result != nil && rep.State != nil {
				rep.Result.State = *rep.State
			}
			return rep.Result, nil
		case errors.Is(err, redis.Nil):
		case ctx.Err() != nil:
			return nil, fmt.Errorf("presence: relay %s: %w", req.Op, ctx.Err())
		default:
			return nil, StoreError(err, "presence: relay "+string(req.Op), r.replyKey(req.ID))
		}
		// Nothing yet: is anybody there to answer?
		if leads, err := r.leader(ctx); err == nil && !leads {
			if leaderless.IsZero() {
				leaderless = time.Now()
			}
			if claimed, _ := r.rdb.Exists(ctx, r.claimKey(req.ID)).Result(); claimed == 0 && time.Since(leaderless) > noLeader {
				return nil, fmt.Errorf("%w for %v; %s not carried out", ErrNoLeader, noLeader.Round(time.Second), req.Op)
			}
		} else {
			leaderless = time.Time{}
		}
	}
}

// serve carries out the requests of the stream for engine e until ctx ends: from a little
// before now (requests made while no instance led, or that the previous leader had not got
// to), each claimed once, each on its own goroutine.
func (r *Relay) serve(ctx context.Context, e *Engine) {
	last := strconv.FormatInt(time.Now().Add(-r.timeout).UnixMilli(), 10) + "-0"
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		streams, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{r.stream, last}, Count: 100, Block: time.Second}).Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				r.log.Warn("relay: cannot read the requests; retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				last = m.ID
				raw, _ := m.Values["request"].(string)
				var req relayRequest
				if err := json.Unmarshal([]byte(raw), &req); err != nil {
					r.log.Warn("relay: unreadable request skipped", "id", m.ID, "err", err)
					continue
				}
				if time.Now().After(req.Deadline) {
					continue // its caller gave up
				}
				ok, err := r.rdb.SetNX(ctx, r.claimKey(req.ID), r.instance, time.Minute).Result()
				if err != nil || !ok {
					continue // another leader took it, or the store failed: the caller times out
				}
				wg.Go(func() { r.carryOut(ctx, e, req) })
			}
		}
	}
}

// carryOut runs one request on the engine and answers it.
func (r *Relay) carryOut(ctx context.Context, e *Engine, req relayRequest) {
	ctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	var (
		res *SwitchResult
		err error
	)
	switch req.Op {
	case relaySwitch:
		if req.Switch == nil {
			err = errors.New("presence: relay: switch without its request")
		} else {
			res, err = e.Switch(ctx, *req.Switch)
		}
	case relayEnforce:
		res, err = e.Enforce(ctx, req.User, req.Actor)
	case relayCheck:
		res, err = e.Check(ctx, req.User)
	case relayCheckSoon:
		e.CheckSoon(req.User)
		return
	default:
		err = fmt.Errorf("presence: relay: unknown operation %q", req.Op)
	}
	rep := relayReply{Result: res, Error: relayErrorOf(err)}
	if res != nil {
		st := res.State
		rep.State = &st
	}
	raw, merr := json.Marshal(rep)
	if merr != nil {
		raw, _ = json.Marshal(relayReply{Error: relayErrorOf(merr)})
	}
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer acancel()
	perr := r.confirm(actx, "presence: relay answer", func(c redis.Cmdable) error {
		_, err := c.TxPipelined(actx, func(p redis.Pipeliner) error {
			p.RPush(actx, r.replyKey(req.ID), raw)
			p.Expire(actx, r.replyKey(req.ID), time.Minute)
			return nil
		})
		return err
	})
	if perr != nil {
		r.log.Warn("relay: cannot answer a request", "op", string(req.Op), "from", req.From, "err", perr)
	}
}

// relayErrorOf encodes err for the relay; nil for nil.
func relayErrorOf(err error) *relayError {
	if err == nil {
		return nil
	}
	re := &relayError{Code: "other", Message: err.Error()}
	var (
		invalid *ValidationError
		unavail *UnavailableError
		corrupt *CorruptError
	)
	switch {
	case errors.As(err, &invalid):
		re.Code, re.Problems = "invalid", invalid.Problems
	case errors.Is(err, ErrUnknownUser):
		re.Code = "unknown_user"
	case errors.Is(err, ErrUnknownProfile):
		re.Code = "unknown_profile"
	case errors.Is(err, ErrStateChanged):
		re.Code = "state_changed"
	case errors.Is(err, ErrProfileActive):
		re.Code = "profile_active"
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrFenced):
		re.Code = "not_running"
	case errors.As(err, &unavail):
		re.Code, re.Message = "unavailable", unavail.Reason
	case errors.As(err, &corrupt):
		re.Code = "corrupt"
	case errors.Is(err, context.DeadlineExceeded):
		re.Code = "timeout"
	}
	return re
}

// err turns a relayed error back into the engine's error of its kind.
func (re *relayError) err() error {
	switch re.Code {
	case "invalid":
		return &ValidationError{Problems: re.Problems}
	case "unavailable":
		return &UnavailableError{Reason: re.Message, Op: "relay", Err: errors.New(re.Message)}
	}
	return &relayedError{code: re.Code, msg: re.Message}
}

// relayedError is an error the leader answered a relayed request with.
type relayedError struct{ code, msg string }

func (e *relayedError) Error() string { return strings.TrimPrefix(e.msg, "presence: ") }

// Is makes errors.Is match the engine's error of the same kind.
func (e *relayedError) Is(target error) bool {
	switch e.code {
	case "unknown_user":
		return target == ErrUnknownUser
	case "unknown_profile":
		return target == ErrUnknownProfile
	case "state_changed":
		return target == ErrStateChanged
	case "profile_active":
		return target == ErrProfileActive
	case "not_running":
		return target == ErrNotRunning
	case "timeout":
		return target == context.DeadlineExceeded
	}
	return false
}
