// Package featurecode is presenced's Stasis application for the profile feature codes: a user
// dials *55<n> to switch to the profile whose activation number is n, or *55 to hear the
// active profile and key in a number followed by #; *76 toggles DND as the DND key of the
// user's phone does (on to their DND profile, off back to the profile before).
//
// The shipped dialplan (deploy/asterisk/extensions_presenced.conf, context presenced-features)
// sends those calls to the application with the arguments
//
//	activate,<n>[*<ext>],<transferred by>,<caller number>   for *55<n> and *55<n>*<ext>
//	menu,,<transferred by>,<caller number>                   for *55
//	dnd,[<ext>],<transferred by>,<caller number>              for *76 and *76<ext>
//
// (<transferred by> is ${BLINDTRANSFER}${ATTENDEDTRANSFER}, empty unless the call was
// transferred to the feature code; older dialplans leave it out.)
//
// A call is the user's only when it is proven to come from the user: its channel is one of
// the user's devices, or the admin trusts the context it dialled the code from (see identify).
// Any other call, Local channels (forwards, queue calls), trunks and unknown endpoints
// included, switches a user only with that user's PIN, whether it names the user by
// *55<n>*<ext> or by its caller ID.
//
// The App consumes the events of an ari.Client: each call runs on its own goroutine, and the
// events of its channel (digits, hangup) are routed to it without ever blocking the event
// loop. A switch goes through presence.Engine, which serialises it with every other switch
// of the same user; once started it completes even if the caller hangs up, and it is never
// started after the caller hung up.
package featurecode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/presence"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultPINAttempts       = 5
	DefaultLockout           = 15 * time.Minute
	DefaultFirstDigitTimeout = 5 * time.Second
	DefaultDigitTimeout      = 3 * time.Second
	DefaultMaxCallDuration   = 2 * time.Minute
	DefaultSwitchTimeout     = 15 * time.Second
	DefaultKeyPrefix         = "presenced:"
)

// Channels is what the application needs of the ARI client (*ari.Client implements it).
type Channels interface {
	Answer(ctx context.Context, channelID string) error
	Hangup(ctx context.Context, channelID string) error
	Play(ctx context.Context, channelID, playbackID string, media ...string) error
	PlayAndWait(ctx context.Context, channelID, playbackID string, media ...string) error
	StopPlayback(ctx context.Context, playbackID string) error
	Channel(ctx context.Context, channelID string) (ari.ChannelData, error)
}

// Engine is what the application needs of the switching engine (*presence.Engine implements
// it).
type Engine interface {
	Catalog() *presence.Catalog
	Profiles(ctx context.Context, id presence.UserID) ([]*presence.Profile, error)
	Switch(ctx context.Context, req presence.SwitchRequest) (*presence.SwitchResult, error)
	// SwitchDND toggles the user's DND as the DND key of their phone does (*76).
	SwitchDND(ctx context.Context, req presence.DNDRequest) (*presence.SwitchResult, bool, error)
	// BoundTo returns the user bound to hot desk device by a location action, who holds it.
	BoundTo(ctx context.Context, device string) (*presence.User, bool, error)
}

// States reads a user's state (*presence.StateStore implements it).
type States interface {
	Load(ctx context.Context, id presence.UserID) (presence.UserState, bool, error)
}

// Options configures an App.
type Options struct {
	// Channels, Engine, States and Redis are required. Redis holds the PIN failure counters
	// (Prefix + "pinfail:<user>"), so that a lockout holds across restarts and instances.
	Channels Channels
	Engine   Engine
	States   States
	Redis    redis.Cmdable

	// Prefix starts the Redis keys; empty means DefaultKeyPrefix.
	Prefix string

	// DefaultProfile is where dialing the number of the active profile returns to, for users
	// without a DefaultProfile of their own; empty means presence.ProfileAvailable
	// (presence.Catalog.HomeProfile with this as the fallback).
	DefaultProfile string

	// AlwaysPIN asks users who have a PIN for it on every call, also from their own phones.
	// Without it the PIN is only asked when the call is not proven to come from the user it
	// switches (see Identity).
	AlwaysPIN bool

	// TrustedContexts are the dialplan contexts (channel.dialplan.context of the StasisStart:
	// the context that includes presenced-features) in which a caller ID number identifies
	// the caller without a PIN, for channels that are no user's device. Local channels and
	// transferred calls are never trusted. Each must pass CheckContext.
	TrustedContexts []string

	// PINAttempts wrong PINs in a row lock the user's feature codes for Lockout. Zero means
	// DefaultPINAttempts and DefaultLockout.
	PINAttempts int
	Lockout     time.Duration

	// FirstDigitTimeout is how long a prompt for digits waits for the first one (counted from
	// the end of the prompt), DigitTimeout how long it waits for each further one. Zero means
	// DefaultFirstDigitTimeout and DefaultDigitTimeout.
	FirstDigitTimeout time.Duration
	DigitTimeout      time.Duration

	// MaxCallDuration bounds a whole call; zero means DefaultMaxCallDuration.
	MaxCallDuration time.Duration

	// SwitchTimeout bounds a switch, which is not cancelled by the caller hanging up; zero
	// means DefaultSwitchTimeout.
	SwitchTimeout time.Duration

	// RequestTimeout bounds each ARI and Redis request of a call; zero means 5 s.
	RequestTimeout time.Duration

	// Observe, if set, is called at the end of every call with its outcome (for tests and
	// benchmarks). It runs on the call's goroutine.
	Observe func(Outcome)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Result is how a feature-code call ended; it labels presenced_featurecode_calls_total.
type Result string

// The results of a call.
const (
	ResultSwitched       Result = "switched"        // the user was switched and heard the confirmation
	ResultNoChange       Result = "no_change"       // the menu was left with # alone
	ResultUnknownUser    Result = "unknown_user"    // the caller is no user, or *55<n>*<ext> names none
	ResultUnknownProfile Result = "unknown_profile" // no profile of the user has that number
	ResultDenied         Result = "denied"          // a PIN is needed but the user has none
	ResultBadPIN         Result = "bad_pin"         // wrong PIN
	ResultLockedOut      Result = "locked_out"      // too many wrong PINs
	ResultTimeout        Result = "timeout"         // the caller keyed nothing (more) in time
	ResultHangup         Result = "hangup"          // the caller hung up before a switch started
	ResultFailed         Result = "failed"          // presenced or Asterisk failed
)

// Results lists every result.
func Results() []Result {
	return []Result{ResultSwitched, ResultNoChange, ResultUnknownUser, ResultUnknownProfile, ResultDenied,
		ResultBadPIN, ResultLockedOut, ResultTimeout, ResultHangup, ResultFailed}
}

// Outcome is what one call did.
type Outcome struct {
	ChannelID string
	Channel   string          // the channel's name
	User      presence.UserID // the user to switch; "" when the user is unknown
	Profile   string          // the profile switched to, if any
	Result    Result
	// Caller is the user the call is proven to come from, "" when none (Identity says how).
	Caller   presence.UserID
	Identity Identity
	// Context is the dialplan context the channel dialled the feature code from
	// (channel.dialplan.context of the StasisStart).
	Context string
	// PIN is set when the call needed the PIN of the user it switches: it was asked for it,
	// or denied when the user has none.
	PIN bool
	// Actor is who the switch was journaled as: the proven caller's user ID, or
	// "pin:<channel>" for a call that proved itself only by the PIN.
	Actor string
	// Latency is the time from the last digit that decided the switch (the StasisStart of a
	// *55<n> call) to the confirmation prompt starting, the switch applied in between. Zero
	// when nothing was switched.
	Latency time.Duration
	Err     error
}

// App is the feature-code Stasis application.
type App struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	trusted map[string]bool // Options.TrustedContexts

	legacyArgs sync.Once // warns once about the arguments of an older dialplan

	mu    sync.Mutex
	calls map[string]*call // by channel ID
	wg    sync.WaitGroup
}

// New checks opts and returns an App; start it with Run.
func New(opts Options) (*App, error) {
	switch {
	case opts.Channels == nil:
		return nil, errors.New("featurecode: Options.Channels is required")
	case opts.Engine == nil:
		return nil, errors.New("featurecode: Options.Engine is required")
	case opts.States == nil:
		return nil, errors.New("featurecode: Options.States is required")
	case opts.Redis == nil:
		return nil, errors.New("featurecode: Options.Redis is required")
	case opts.PINAttempts < 0:
		return nil, fmt.Errorf("featurecode: Options.PINAttempts %d must not be negative", opts.PINAttempts)
	}
	trusted := make(map[string]bool, len(opts.TrustedContexts))
	for i, name := range opts.TrustedContexts {
		if err := CheckContext(name); err != nil {
			return nil, fmt.Errorf("featurecode: Options.TrustedContexts[%d]: %w", i, err)
		}
		trusted[name] = true
	}
	for name, d := range map[string]time.Duration{
		"Lockout": opts.Lockout, "FirstDigitTimeout": opts.FirstDigitTimeout, "DigitTimeout": opts.DigitTimeout,
		"MaxCallDuration": opts.MaxCallDuration, "SwitchTimeout": opts.SwitchTimeout, "RequestTimeout": opts.RequestTimeout,
	} {
		if d < 0 {
			return nil, fmt.Errorf("featurecode: Options.%s %v must not be negative", name, d)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if opts.PINAttempts == 0 {
		opts.PINAttempts = DefaultPINAttempts
	}
	def(&opts.Lockout, DefaultLockout)
	def(&opts.FirstDigitTimeout, DefaultFirstDigitTimeout)
	def(&opts.DigitTimeout, DefaultDigitTimeout)
	def(&opts.MaxCallDuration, DefaultMaxCallDuration)
	def(&opts.SwitchTimeout, DefaultSwitchTimeout)
	def(&opts.RequestTimeout, 5*time.Second)
	if opts.Prefix == "" {
		opts.Prefix = DefaultKeyPrefix
	}
	if opts.DefaultProfile == "" {
		opts.DefaultProfile = presence.ProfileAvailable
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &App{opts: opts, log: opts.Logger, metrics: m, trusted: trusted, calls: map[string]*call{}}, nil
}

// Run handles the events until ctx is done or events is closed, then waits for the calls in
// progress to end (they are hung up when ctx is done). It must be the only reader of events.
func (a *App) Run(ctx context.Context, events <-chan ari.Event) {
	defer a.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			a.handle(ctx, ev)
		}
	}
}

// handle routes one event; it never blocks.
func (a *App) handle(ctx context.Context, ev ari.Event) {
	switch e := ev.(type) {
	case *ari.StasisStart:
		a.start(ctx, e)
	case *ari.ChannelDtmfReceived:
		if c := a.lookup(e.Channel.ID); c != nil {
			c.digit(e.Digit)
		}
	case *ari.StasisEnd:
		a.gone(e.Channel.ID, "stasis end")
	case *ari.ChannelHangupRequest:
		a.gone(e.Channel.ID, "hangup request")
	case *ari.ChannelDestroyed:
		a.gone(e.Channel.ID, "destroyed")
	case *ari.PlaybackFinished:
		if id, ok := strings.CutPrefix(e.Playback.TargetURI, "channel:"); ok {
			if c := a.lookup(id); c != nil {
				c.playbackFinished(e.Playback.ID)
			}
		}
	case *ari.Resync:
		a.resync(ctx)
	}
}

func (a *App) lookup(id string) *call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

func (a *App) gone(id, why string) {
	if c := a.lookup(id); c != nil {
		c.hungUp(why)
	}
}

// start begins a call on its own goroutine.
func (a *App) start(ctx context.Context, e *ari.StasisStart) {
	caller, dialplanContext := "", ""
	if e.Channel.Caller != nil {
		caller = e.Channel.Caller.Number
	}
	if e.Channel.Dialplan != nil {
		dialplanContext = e.Channel.Dialplan.Context
	}
	c := newCall(a, e.Channel.ID, e.Channel.Name, dialplanContext, caller, e.Args, time.Now())
	a.mu.Lock()
	if _, dup := a.calls[c.id]; dup {
		a.mu.Unlock()
		return
	}
	a.calls[c.id] = c
	n := len(a.calls)
	a.mu.Unlock()
	a.metrics.active.Set(float64(n))
	a.wg.Go(func() {
		defer func() {
			a.mu.Lock()
			delete(a.calls, c.id)
			n := len(a.calls)
			a.mu.Unlock()
			a.metrics.active.Set(float64(n))
		}()
		c.run(ctx)
	})
}

// resync checks that the channels of the calls in progress still exist: their hangup may have
// happened while events were lost.
func (a *App) resync(ctx context.Context) {
	a.mu.Lock()
	calls := make([]*call, 0, len(a.calls))
	for _, c := range a.calls {
		calls = append(calls, c)
	}
	a.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	a.wg.Go(func() {
		for _, c := range calls {
			rctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
			_, err := a.opts.Channels.Channel(rctx, c.id)
			cancel()
			var re *ari.RequestError
			if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
				c.hungUp("gone after resync")
			}
		}
	})
}
