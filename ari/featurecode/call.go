package featurecode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// Sounds of the prompts, from Asterisk's core sounds (asterisk-core-sounds-en).
const (
	soundConfirm     = "sound:activated"
	soundPIN         = "sound:agent-pass"
	soundBadPIN      = "sound:auth-incorrect"
	soundError       = "sound:beeperr"
	soundInvalid     = "sound:pbx-invalid"
	soundGoodbye     = "sound:goodbye"
	soundCurrentIs   = "sound:is-set-to"
	soundEnterNumber = "sound:beep"
	soundDNDOn       = "sound:do-not-disturb"
	soundDNDOff      = "sound:de-activated"
)

const (
	pinTriesPerCall      = 3  // PIN entries per call before it hangs up
	maxDigits            = 16 // longest number keyed in
	digitBuffer          = 64 // digits queued for a call
	playbackEventsBuffer = 16 // finished playbacks queued for a call
)

// Modes of the Stasis() call (its first argument).
const (
	modeActivate = "activate"
	modeMenu     = "menu"
	modeDND      = "dnd" // *76 and *76<ext>: toggle DND as the DND key of the user's phone does
)

// maxExtensionDigits is the longest extension *55<n>*<ext> may name (presence allows 20 digits).
const maxExtensionDigits = 20

// request is what the dialplan's Stasis() arguments ask for.
type request struct {
	mode   string // modeActivate or modeMenu
	number string // activation number (activate)
	ext    string // the user to switch, from *55<n>*<ext> or *76<ext>; "" means the caller
	// transfer is ${BLINDTRANSFER}${ATTENDEDTRANSFER}: the channel that transferred this one
	// to the feature code, "" when it dialled the code itself.
	transfer string
	caller   string // ${CALLERID(num)}
	// legacy is set for the argument list of an older dialplan, which does not say whether
	// the call was transferred.
	legacy bool
}

// parseArgs reads the arguments of Stasis(app,<mode>,<n>[*<ext>],<transfer>,<caller>). The
// caller number comes last because it is the one argument a caller may choose (a trunk's
// caller ID may hold commas, which Stasis() splits): whatever it holds, it cannot shift the
// arguments before it, and the pieces after the transfer argument are joined back. The
// argument list of older dialplans, <mode>,<n>[*<ext>],<caller>, is still read (legacy): a
// caller number with a comma then looks like a transfer, which only makes presenced ask for
// a PIN.
func parseArgs(args []string) (request, error) {
	var r request
	if len(args) == 0 {
		return r, errors.New("no arguments")
	}
	r.mode = args[0]
	switch {
	case len(args) <= 3:
		r.legacy = true
		if len(args) == 3 {
			r.caller = args[2]
		}
	default:
		r.transfer = args[2]
		r.caller = strings.Join(args[3:], ",")
	}
	arg := ""
	if len(args) > 1 {
		arg = args[1]
	}
	switch r.mode {
	case modeMenu:
		if arg != "" {
			return r, fmt.Errorf("menu takes no number, got %q", arg)
		}
	case modeDND:
		r.ext = arg
		if arg != "" && !isDigits(arg) {
			return r, fmt.Errorf("extension %q is not digits", arg)
		}
		if len(r.ext) > maxExtensionDigits {
			return r, fmt.Errorf("extension %q is longer than %d digits", r.ext, maxExtensionDigits)
		}
	case modeActivate:
		var hasExt bool
		r.number, r.ext, hasExt = strings.Cut(arg, "*")
		if !isDigits(r.number) {
			return r, fmt.Errorf("activation number %q is not digits", r.number)
		}
		if len(r.number) > maxDigits {
			return r, fmt.Errorf("activation number %q is longer than %d digits", r.number, maxDigits)
		}
		if hasExt && !isDigits(r.ext) {
			return r, fmt.Errorf("extension %q in %q is not digits", r.ext, arg)
		}
		if len(r.ext) > maxExtensionDigits {
			return r, fmt.Errorf("extension %q is longer than %d digits", r.ext, maxExtensionDigits)
		}
	default:
		return r, fmt.Errorf("unknown mode %q", r.mode)
	}
	return r, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sayDigits is the media that reads a number digit by digit.
func sayDigits(n string) []string {
	var out []string
	for _, c := range n {
		if c >= '0' && c <= '9' {
			out = append(out, "sound:digits/"+string(c))
		}
	}
	return out
}

// call is one feature-code call, run by its own goroutine.
type call struct {
	app     *App
	log     *slog.Logger
	id      string // channel ID
	name    string // channel name
	context string // dialplan context the channel entered the application from
	caller  string // caller ID number of the channel (logged)
	args    []string
	started time.Time

	digits    chan string   // DTMF digits, in order
	playbacks chan string   // IDs of finished playbacks
	goneCh    chan struct{} // closed when the channel left the application
	goneOnce  sync.Once
	seq       int // playback sequence, call goroutine only
}

func newCall(a *App, id, name, dialplanContext, caller string, args []string, started time.Time) *call {
	return &call{
		app: a, id: id, name: name, context: dialplanContext, caller: caller, args: args, started: started,
		log:       a.log.With("channel", name, "channel_id", id),
		digits:    make(chan string, digitBuffer),
		playbacks: make(chan string, playbackEventsBuffer),
		goneCh:    make(chan struct{}),
	}
}

// digit hands a digit to the call; called by the event loop, never blocks.
func (c *call) digit(d string) {
	select {
	case c.digits <- d:
	default:
		c.log.Warn("feature-code call: digit dropped, the call is not reading", "digit", d)
	}
}

// playbackFinished hands a finished playback to the call; never blocks.
func (c *call) playbackFinished(id string) {
	select {
	case c.playbacks <- id:
	default:
	}
}

// hungUp marks the channel as gone; called by the event loop, never blocks.
func (c *call) hungUp(why string) {
	c.goneOnce.Do(func() {
		c.log.Debug("feature-code call: channel gone", "why", why)
		close(c.goneCh)
	})
}

func (c *call) isGone() bool {
	select {
	case <-c.goneCh:
		return true
	default:
		return false
	}
}

// run handles the call from StasisStart to hangup.
func (c *call) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.app.opts.MaxCallDuration)
	defer cancel()
	out := c.flow(ctx)
	out.ChannelID, out.Channel = c.id, c.name
	if out.Result == ResultSwitched {
		c.app.metrics.latency.Observe(out.Latency.Seconds())
	}
	c.app.metrics.calls.WithLabelValues(string(out.Result)).Inc()
	level := slog.LevelInfo
	if out.Result == ResultFailed {
		level = slog.LevelError
	}
	c.log.Log(ctx, level, "feature-code call", "args", c.args, "caller", c.caller, "context", c.context,
		"identity", out.Identity, "proven_caller", out.Caller, "pin", out.PIN, "user", out.User,
		"profile", out.Profile, "result", out.Result, "latency", out.Latency, "err", out.Err)
	if !c.isGone() {
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), c.app.opts.RequestTimeout)
		if err := c.app.opts.Channels.Hangup(hctx, c.id); err != nil && !c.isGone() {
			c.log.Debug("feature-code call: hang up", "err", err)
		}
		hcancel()
	}
	if c.app.opts.Observe != nil {
		c.app.opts.Observe(out)
	}
}

// flow is the dialogue; it returns how it ended, after the final prompt.
func (c *call) flow(ctx context.Context) Outcome {
	out := Outcome{Context: c.context, Identity: IdentityNone}
	// The channel is answered while the call is identified and, for a number dialled whole
	// (*55<n>), switched: nothing before the first prompt needs it answered, and under load
	// Asterisk takes a while to answer (hundreds of milliseconds for a burst of calls), time
	// the switch need not wait for. What plays a prompt or collects digits waits for it.
	answered := make(chan error, 1)
	go func() {
		answered <- c.request(ctx, "answer", func(ctx context.Context) error { return c.app.opts.Channels.Answer(ctx, c.id) })
	}()
	waitAnswer := sync.OnceValue(func() error { return <-answered })
	end := func(r Result, err error) Outcome {
		out.Result, out.Err = r, err
		if c.isGone() {
			out.Result = ResultHangup
			return out
		}
		if aerr := waitAnswer(); aerr != nil {
			out.Result, out.Err = ResultFailed, errors.Join(err, aerr)
			return out
		}
		if prompt := promptFor(r); len(prompt) > 0 {
			c.playAndWait(ctx, prompt...)
		}
		return out
	}
	req, err := parseArgs(c.args)
	if err != nil {
		return end(ResultFailed, fmt.Errorf("stasis arguments %q: %w", c.args, err))
	}
	if req.legacy {
		c.app.legacyArgs.Do(func() {
			c.log.Warn("feature codes: the Stasis() arguments are those of an older extensions_presenced.conf, "+
				"which does not say whether a call was transferred to the feature code; install the current one", "args", c.args)
		})
	}

	cat := c.app.opts.Engine.Catalog()
	from := identify(cat, c.app.trusted, c.name, c.context, req, func(device string) (*presence.User, bool) {
		u, ok, err := c.app.opts.Engine.BoundTo(ctx, device)
		if err != nil {
			c.log.Warn("feature-code call: cannot tell who is bound to the hot desk; taken as nobody's", "device", device, "err", err)
		}
		return u, ok && err == nil
	})
	out.Identity = from.how
	if from.user != nil {
		out.Caller = from.user.ID
	}
	// The user to switch: the one *55<n>*<ext> names, else the proven caller, else the one
	// the caller ID claims to be (who must then give their PIN).
	target := from.user
	switch {
	case req.ext != "":
		t, ok := cat.UserByExtension(req.ext)
		if !ok {
			return end(ResultUnknownUser, fmt.Errorf("no user has extension %s", req.ext))
		}
		target = t
	case target == nil && req.caller != "":
		target, _ = cat.UserByExtension(req.caller)
	}
	if target == nil {
		return end(ResultUnknownUser, fmt.Errorf("caller %q (%s) is no user's device and no user's extension", req.caller, c.name))
	}
	out.User = target.ID

	decided := c.started // the last digit that decided the switch
	proven := from.user != nil && from.user.ID == target.ID
	if !proven || (c.app.opts.AlwaysPIN && hasPIN(target)) {
		out.PIN = true
		if !hasPIN(target) {
			why := from.why
			if from.user != nil {
				why = fmt.Sprintf("the call comes from %s, not from %s", from.user.ID, target.ID)
			}
			return end(ResultDenied, fmt.Errorf("a PIN is needed (%s), and %s has none", why, target.ID))
		}
		if err := waitAnswer(); err != nil {
			return end(ResultFailed, err)
		}
		last, r, err := c.checkPIN(ctx, target)
		if r != "" {
			return end(r, err)
		}
		decided = last
	}

	if req.mode == modeDND {
		return c.toggleDND(ctx, target, from, waitAnswer, decided, out, end)
	}

	state, _, err := c.app.opts.States.Load(ctx, target.ID)
	if err != nil {
		return end(ResultFailed, fmt.Errorf("load state: %w", err))
	}
	profiles, err := c.app.opts.Engine.Profiles(ctx, target.ID)
	if err != nil {
		return end(ResultFailed, fmt.Errorf("profiles: %w", err))
	}

	number := req.number
	if req.mode == modeMenu {
		prompt := []string{soundCurrentIs}
		if cur := presence.FindProfile(profiles, state.Profile); cur != nil && cur.Activation != "" {
			prompt = append(prompt, sayDigits(cur.Activation)...)
		} else {
			prompt = append(prompt, "sound:digits/0")
		}
		prompt = append(prompt, soundEnterNumber)
		if err := waitAnswer(); err != nil {
			return end(ResultFailed, err)
		}
		n, last, r := c.collect(ctx, prompt)
		switch {
		case r == resultTooLong:
			return end(ResultUnknownProfile, fmt.Errorf("more than %d digits keyed in", maxDigits))
		case r != "":
			return end(r, nil)
		case n == "":
			return end(ResultNoChange, nil)
		}
		number, decided = n, last
	}

	pr := presence.FindActivation(profiles, number)
	if pr == nil {
		return end(ResultUnknownProfile, fmt.Errorf("no profile of %s has activation number %q", target.ID, number))
	}
	if pr.ID == state.Profile {
		def := cat.HomeProfile(target, c.app.opts.DefaultProfile)
		back := presence.FindProfile(profiles, def)
		if back == nil {
			return end(ResultFailed, fmt.Errorf("default profile %q of %s does not exist", def, target.ID))
		}
		pr = back
	}
	out.Profile = pr.ID

	// Nothing is switched for a caller who already hung up; a switch that started completes
	// (its context does not end with the call).
	if c.isGone() {
		return end(ResultHangup, nil)
	}
	// The journal names the user the call is proven to come from, never one it only claims
	// to be: a call proven by the PIN alone is journaled by its channel.
	actor := "pin:" + deviceOf(c.name)
	if from.user != nil {
		actor = string(from.user.ID)
	}
	out.Actor = actor
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), c.app.opts.SwitchTimeout)
	res, err := c.app.opts.Engine.Switch(sctx, presence.SwitchRequest{
		User: target.ID, Profile: pr.ID, Source: presence.SourceFeatureCode, Actor: actor,
	})
	scancel()
	if err != nil {
		return end(ResultFailed, fmt.Errorf("switch to %s: %w", pr.ID, err))
	}
	if !res.InSync {
		c.log.Warn("feature-code switch recorded but not fully applied; repairs follow", "user", target.ID, "profile", pr.ID)
	}
	return c.confirm(ctx, out, waitAnswer, decided, promptFor(ResultSwitched))
}

// confirm ends a call whose switch was applied: the caller, if still there, hears prompt;
// out's latency runs from decided to the prompt's start.
func (c *call) confirm(ctx context.Context, out Outcome, waitAnswer func() error, decided time.Time, prompt []string) Outcome {
	out.Result = ResultSwitched
	if c.isGone() {
		return out
	}
	if err := waitAnswer(); err != nil {
		out.Err = fmt.Errorf("confirmation prompt: %w", err)
		return out
	}
	pb, err := c.play(ctx, prompt...)
	if err != nil {
		out.Err = fmt.Errorf("confirmation prompt: %w", err)
		return out
	}
	out.Latency = time.Since(decided)
	c.waitPlayback(ctx, pb)
	return out
}

// toggleDND switches the DND of target as the DND key of their phone does (*76, *76<ext>): on
// to their DND profile, off back to the profile before. The caller hears "do not disturb"
// and "activated", or "de-activated". The journal names the phone the code was dialled from.
func (c *call) toggleDND(ctx context.Context, target *presence.User, from caller, waitAnswer func() error, decided time.Time,
	out Outcome, end func(Result, error) Outcome) Outcome {
	if c.isGone() {
		return end(ResultHangup, nil)
	}
	actor := "pin:" + deviceOf(c.name)
	if from.user != nil {
		actor = "*76 on phone " + deviceOf(c.name)
	}
	out.Actor = actor
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), c.app.opts.SwitchTimeout)
	res, on, err := c.app.opts.Engine.SwitchDND(sctx, presence.DNDRequest{User: target.ID, Source: presence.SourceFeatureCode, Actor: actor})
	scancel()
	if err != nil {
		return end(ResultFailed, fmt.Errorf("toggle DND: %w", err))
	}
	out.Profile = res.To
	if !res.InSync {
		c.log.Warn("feature-code DND switch recorded but not fully applied; repairs follow", "user", target.ID, "profile", res.To)
	}
	prompt := []string{soundDNDOn, soundConfirm}
	if !on {
		prompt = []string{soundDNDOn, soundDNDOff}
	}
	return c.confirm(ctx, out, waitAnswer, decided, prompt)
}

// promptFor is what the caller hears when a call ends with r.
func promptFor(r Result) []string {
	switch r {
	case ResultSwitched:
		return []string{soundConfirm}
	case ResultBadPIN:
		return []string{soundBadPIN}
	case ResultLockedOut:
		return []string{soundError, soundGoodbye}
	case ResultUnknownProfile, ResultUnknownUser:
		return []string{soundError, soundInvalid}
	case ResultNoChange:
		return []string{soundGoodbye}
	case ResultHangup:
		return nil
	}
	return []string{soundError}
}

// checkPIN asks for the user's PIN, up to pinTriesPerCall times, counting failures in Redis.
// It returns the time of the last digit and "" when the PIN was right.
func (c *call) checkPIN(ctx context.Context, u *presence.User) (time.Time, Result, error) {
	pins := c.app.pins()
	locked, err := pins.locked(ctx, u.ID)
	if err != nil {
		return time.Time{}, ResultFailed, err
	}
	if locked {
		return time.Time{}, ResultLockedOut, errors.New("feature codes locked after too many wrong PINs")
	}
	prompt := []string{soundPIN}
	for range pinTriesPerCall {
		got, last, r := c.collect(ctx, prompt)
		if r == resultTooLong {
			got, r = "", "" // no PIN is that long: a wrong one ("" is no user's PIN)
		}
		if r != "" {
			return last, r, nil
		}
		if pinMatches(u, got) {
			if err := pins.reset(ctx, u.ID); err != nil {
				c.log.Warn("reset PIN failures", "user", u.ID, "err", err)
			}
			return last, "", nil
		}
		c.app.metrics.pinFailures.Inc()
		lockedNow, err := pins.fail(ctx, u.ID)
		if err != nil {
			return last, ResultFailed, err
		}
		if lockedNow {
			c.app.metrics.lockouts.Inc()
			c.log.Warn("feature codes locked: too many wrong PINs", "user", u.ID, "lockout", c.app.opts.Lockout)
			return last, ResultLockedOut, errors.New("wrong PIN: locked out")
		}
		prompt = []string{soundBadPIN, soundPIN}
	}
	return time.Time{}, ResultBadPIN, errors.New("wrong PIN")
}

// resultTooLong is what collect returns for more than maxDigits digits; the caller turns it
// into one of the Results (a wrong PIN, an unknown profile).
const resultTooLong Result = "too_long"

// collect plays prompt (the first digit interrupts it) and reads digits up to '#': 0-9 count,
// other keys (*, A-D) are ignored. It returns the digits without the '#', the time of the '#',
// and "" or why it failed: resultTooLong (at the '#') for more than maxDigits digits,
// ResultTimeout, ResultHangup or ResultFailed. Digits keyed after the '#' stay queued for the
// next prompt.
func (c *call) collect(ctx context.Context, prompt []string) (string, time.Time, Result) {
	opts := c.app.opts
	pb, err := c.play(ctx, prompt...)
	if err != nil {
		if c.isGone() {
			return "", time.Time{}, ResultHangup
		}
		return "", time.Time{}, ResultFailed
	}
	playing := true
	timer := time.NewTimer(opts.MaxCallDuration)
	defer timer.Stop()
	var b strings.Builder
	tooLong := false
	for {
		select {
		case <-ctx.Done():
			return "", time.Time{}, ResultTimeout
		case <-c.goneCh:
			return "", time.Time{}, ResultHangup
		case id := <-c.playbacks:
			if playing && id == pb {
				playing = false
				timer.Reset(opts.FirstDigitTimeout)
			}
		case d := <-c.digits:
			c.log.Debug("feature-code call: digit", "digit", d)
			if playing {
				playing = false
				sctx, cancel := context.WithTimeout(ctx, opts.RequestTimeout)
				_ = opts.Channels.StopPlayback(sctx, pb)
				cancel()
			}
			if d == "#" {
				if tooLong {
					return "", time.Now(), resultTooLong
				}
				return b.String(), time.Now(), ""
			}
			if len(d) == 1 && d[0] >= '0' && d[0] <= '9' {
				if b.Len() >= maxDigits {
					tooLong = true // refused at the '#': the whole entry is one wrong entry
				} else {
					b.WriteString(d)
				}
			}
			timer.Reset(opts.DigitTimeout)
		case <-timer.C:
			return "", time.Time{}, ResultTimeout
		}
	}
}

// play starts media on the channel and returns the playback ID.
func (c *call) play(ctx context.Context, media ...string) (string, error) {
	c.seq++
	id := fmt.Sprintf("%s-fc%d", c.id, c.seq)
	err := c.request(ctx, "play", func(ctx context.Context) error { return c.app.opts.Channels.Play(ctx, c.id, id, media...) })
	return id, err
}

// waitPlayback waits until the playback finished, the channel left or ctx ended.
func (c *call) waitPlayback(ctx context.Context, id string) {
	for {
		select {
		case got := <-c.playbacks:
			if got == id {
				return
			}
		case <-c.goneCh:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (c *call) playAndWait(ctx context.Context, media ...string) {
	if id, err := c.play(ctx, media...); err == nil {
		c.waitPlayback(ctx, id)
	}
}

// request runs one ARI request bounded by RequestTimeout.
func (c *call) request(ctx context.Context, what string, f func(context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, c.app.opts.RequestTimeout)
	defer cancel()
	if err := f(rctx); err != nil {
		return fmt.Errorf("%s %s: %w", what, c.name, err)
	}
	return nil
}
