// Package blf is the presence concern for what phones show: BLF lamps (Custom: device states)
// and presence states (CustomPresence: providers). The states of the users' phones, which
// presenced follows but never sets, are package callstate's.
//
// # Observing
//
// Observe costs one DeviceStateList and one PresenceStateList (each only when some user wants
// a lamp, respectively a presence state), whatever the number of users. A batch of few users
// beside those lists reads its own lamps and providers instead, as many per Getvar as AMI's
// line holds (about 25 lamps or 10 providers: EVAL of DEVICE_STATE and PRESENCE_STATE,
// combined.go).
//
// Lamps are recorded upper-cased, as Asterisk reports them (it keeps a caller's "not_inuse"
// spelling in astdb but lists NOT_INUSE). A device DeviceStateList does not list, such as a
// Custom: device that was never set, is recorded as "UNKNOWN", which is what
// DEVICE_STATE() reads for it; no lamp can be set to UNKNOWN, so a plan always sets such a
// lamp. Device names are case-sensitive: Custom:dnd1001 is not Custom:DND1001.
//
// Presence states are recorded as PresenceStateList reports them, except that its messages
// are C-escaped by Asterisk (ast_escape_c: a backslash, quote, apostrophe or question mark
// gets a backslash before it, a tab becomes \t) while PresenceState and the phones get the
// text itself; Observe undoes the escaping. Messages stored base64-encoded (option e) are
// listed decoded already. A provider PresenceStateList does not list (never set) is nil.
//
// # Applying
//
// device_state is Setvar DEVICE_STATE(Custom:X)=STATE without a channel, and presence is
// Setvar PRESENCE_STATE(CustomPresence:X)=state,,message (FormatPresence). The fields of that
// value are split at commas, so a message with a comma is written base64-encoded with option
// e (state,,base64,e); Asterisk decodes it for PresenceState, PresenceStateList, events and
// phones, but keeps only the first 255 bytes of a decoded message, so a longer message with
// commas fails (MaxEncodedMessage). Other messages are written as they are: nothing else in
// them can break the parsing (leading blanks, quotes, backslashes, '%', ':' and non-ASCII text
// all survive, which the lab tests check), and they are not limited to 255 bytes. The subtype
// is always empty, because option e would decode it too.
package blf

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiconcern"
	"github.com/presenced/presenced/presence"
)

// UnknownState is the state Observe records for a lamp Asterisk does not list.
const UnknownState = "UNKNOWN"

// MaxEncodedMessage is the longest message (in bytes) that can be written base64-encoded:
// Asterisk 22 cuts decoded presence messages to 255 bytes (the lab shows it; messages
// written as they are keep their length up to AMI's line limit).
const MaxEncodedMessage = 255

// Options configures a Concern (amiconcern.Options). Its AMI user needs write class call
// (Setvar, DeviceStateList, PresenceStateList), and Asterisk res_manager_devicestate and
// res_manager_presencestate. Registerer receives presenced_blf_ops_total (deprecated:
// presenced_operations_total{concern="blf"} counts the same). SmallBatch is the most users an
// observation reads lamp by lamp (Getvar DEVICE_STATE) and provider by provider
// (PresenceState); larger batches list every device and presence state once, unless reading
// their lamps (providers) one by one costs Asterisk less, judged by the size of the last list.
type Options = amiconcern.Options

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxInFlight = amiconcern.DefaultMaxInFlight
	DefaultSmallBatch  = amiconcern.DefaultSmallBatch
)

// Concern observes and applies lamps and presence states. It implements presence.Concern and
// is safe for concurrent use.
type Concern struct {
	base *amiconcern.Base
	// surveyDevices and surveyPresence say what Survey lists: what the last full check
	// needed listed.
	surveyDevices, surveyPresence atomic.Bool
	// listedDevices and listedPresence are how many entries the last DeviceStateList and
	// PresenceStateList had; 0 before the first.
	listedDevices, listedPresence atomic.Int64
	// combine says whether lamps and presence states read one by one go several per action
	// (combined.go); it turns false for good when Asterisk cannot.
	combine atomic.Bool
}

// oneByOne reports whether reading n things one by one costs Asterisk less than listing
// all of them again, judged by the size of the last list: each read is a round trip of its
// own, weighed double against one entry of a list. Unknown size: list.
func oneByOne(n int, listed int64) bool {
	return listed > 0 && 2*int64(n) <= listed
}

var (
	_ presence.Concern  = (*Concern)(nil)
	_ presence.Surveyor = (*Concern)(nil)
)

// New validates o and returns a Concern.
func New(o Options) (*Concern, error) {
	b, err := amiconcern.New(amiconcern.Spec{
		Name:    "blf",
		Kinds:   []presence.OpKind{presence.OpDeviceState, presence.OpPresence},
		Counter: "presenced_blf_ops_total",
		Help:    "Deprecated: presenced_operations_total{concern=\"blf\"}. Lamp and presence operations applied, by kind (device_state, presence) and result (applied, unchanged, failed).",
	}, o)
	if err != nil {
		return nil, err
	}
	c := &Concern{base: b}
	c.combine.Store(true)
	return c, nil
}

// Name implements presence.Concern: "blf".
func (c *Concern) Name() string { return c.base.Name() }

// Kinds implements presence.Concern: device_state and presence.
func (c *Concern) Kinds() []presence.OpKind { return c.base.Kinds() }

// Observe implements presence.Concern. For every user of want it records in
// have[user].Devices the state of each device want[user].Devices names (UnknownState when
// Asterisk does not list it) and in have[user].Presence the state of each provider
// want[user].Presence names (nil when Asterisk does not list it). It touches no other field
// of have, so other concerns may observe into the same targets concurrently; have must hold a
// target for every user of want.
func (c *Concern) Observe(ctx context.Context, want map[presence.UserID]*presence.Target, have map[presence.UserID]*presence.Target) error {
	return c.observe(ctx, want, have, &survey{c: c})
}

// Survey implements presence.Surveyor: it lists every device state and every presence
// state when the last full check needed them (Fill remembers), for a full check to fill its
// users' observations from while it reads their states.
func (c *Concern) Survey(ctx context.Context) (presence.Survey, error) {
	s := &survey{c: c, full: true}
	var devErr, presErr error
	var wg sync.WaitGroup
	if c.surveyDevices.Load() {
		wg.Go(func() { s.devices, devErr = c.listDevices(ctx) })
	}
	if c.surveyPresence.Load() {
		wg.Go(func() { s.presents, presErr = c.listPresence(ctx) })
	}
	wg.Wait()
	if err := errors.Join(devErr, presErr); err != nil {
		return nil, err
	}
	s.listedDevices, s.listedPresence = c.surveyDevices.Load(), c.surveyPresence.Load()
	return s, nil
}

// survey is what Survey listed; full marks a full check's (Observe's is empty).
type survey struct {
	c                             *Concern
	full                          bool
	devices                       map[string]string
	presents                      map[string]presence.PresenceValue
	listedDevices, listedPresence bool
}

// Fill implements presence.Survey: it observes as Observe does, but takes what the survey
// listed instead of reading it again, and remembers for the next survey what this check
// needed listed.
func (s *survey) Fill(ctx context.Context, want, have map[presence.UserID]*presence.Target) error {
	return s.c.observe(ctx, want, have, s)
}

// observe is Observe, with what a survey listed (listedDevices, listedPresence) taken from
// it; a survey of a full check (not Observe's empty one) also sets what the next lists.
func (c *Concern) observe(ctx context.Context, want map[presence.UserID]*presence.Target, have map[presence.UserID]*presence.Target, got *survey) error {
	wantDevices, wantPresence := map[string]bool{}, map[string]bool{}
	for u, w := range want {
		if w == nil {
			continue
		}
		if have[u] == nil {
			return fmt.Errorf("blf: observe: no observed target for user %s", u)
		}
		for d := range w.Devices {
			wantDevices[d] = true
		}
		for p := range w.Presence {
			wantPresence[p] = true
		}
	}

	// A small batch reads just its lamps and providers, so a switch of one user does not
	// list every device of the PBX; a large batch lists everything once, unless its lamps
	// (providers) are few beside what the last list held: a burst of feature codes observes
	// batches of tens of users while hundreds of calls swell the list of device states.
	small := len(want) <= c.base.SmallBatch
	readDevices := small || oneByOne(len(wantDevices), c.listedDevices.Load())
	readPresence := small || oneByOne(len(wantPresence), c.listedPresence.Load())
	if got.full {
		c.surveyDevices.Store(!readDevices && len(wantDevices) > 0)
		c.surveyPresence.Store(!readPresence && len(wantPresence) > 0)
	}
	var (
		devices  = got.devices
		presents = got.presents
		devErr   error
		presErr  error
		wg       sync.WaitGroup
	)
	switch {
	case len(wantDevices) == 0, got.listedDevices:
	case readDevices:
		wg.Go(func() { devices, devErr = c.readDevices(ctx, wantDevices) })
	default:
		wg.Go(func() { devices, devErr = c.listDevices(ctx) })
	}
	switch {
	case len(wantPresence) == 0, got.listedPresence:
	case readPresence:
		wg.Go(func() { presents, presErr = c.readPresence(ctx, wantPresence) })
	default:
		wg.Go(func() { presents, presErr = c.listPresence(ctx) })
	}
	wg.Wait()
	if err := errors.Join(devErr, presErr); err != nil {
		return err
	}

	for u, w := range want {
		if w == nil {
			continue
		}
		h := have[u]
		if len(w.Devices) > 0 && h.Devices == nil {
			h.Devices = map[string]string{}
		}
		for d := range w.Devices {
			if s, ok := devices[d]; ok {
				h.Devices[d] = s
			} else {
				h.Devices[d] = UnknownState
			}
		}
		if len(w.Presence) > 0 && h.Presence == nil {
			h.Presence = map[string]*presence.PresenceValue{}
		}
		for p := range w.Presence {
			if v, ok := presents[p]; ok {
				h.Presence[p] = &v
			} else {
				h.Presence[p] = nil
			}
		}
	}
	return nil
}

func (c *Concern) listDevices(ctx context.Context) (map[string]string, error) {
	if err := c.base.Acquire(ctx); err != nil {
		return nil, fmt.Errorf("blf: observe lamps: %w", err)
	}
	defer c.base.Release()
	list, err := c.base.Reader.DeviceStateList(ctx)
	if err != nil {
		return nil, fmt.Errorf("blf: observe lamps: %w", err)
	}
	c.listedDevices.Store(int64(len(list)))
	out := make(map[string]string, len(list))
	for _, d := range list {
		out[d.Device] = strings.ToUpper(d.State)
	}
	return out, nil
}

func (c *Concern) listPresence(ctx context.Context) (map[string]presence.PresenceValue, error) {
	if err := c.base.Acquire(ctx); err != nil {
		return nil, fmt.Errorf("blf: observe presence: %w", err)
	}
	defer c.base.Release()
	list, err := c.base.Reader.PresenceStateList(ctx)
	if err != nil {
		return nil, fmt.Errorf("blf: observe presence: %w", err)
	}
	c.listedPresence.Store(int64(len(list)))
	out := make(map[string]presence.PresenceValue, len(list))
	for _, p := range list {
		out[p.Provider] = presence.PresenceValue{State: p.State, Message: unescapeC(p.Message)}
	}
	return out, nil
}

// Apply implements presence.Concern: it sends u's operations at once (presence.ApplyAll: they
// name distinct devices and providers) and reports one outcome per operation. Operations are
// independent: one that fails does not stop the others. Once ctx is done the operations not
// yet sent fail. Setting a lamp or a presence state is always ResultApplied (Asterisk does not say whether it changed).
func (c *Concern) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	return c.base.Apply(ctx, u, ops, c.apply)
}

func (c *Concern) apply(ctx context.Context, op presence.Op) presence.Outcome {
	switch op.Kind {
	case presence.OpDeviceState:
		state := strings.ToUpper(op.Value)
		if err := checkDevice(op.Key, state); err != nil {
			return presence.Failed(op, fmt.Errorf("lamp %s: %w", op.Key, err))
		}
		if err := c.setvar(ctx, "DEVICE_STATE("+op.Key+")", state); err != nil {
			return presence.Failed(op, fmt.Errorf("lamp %s %s: %w", op.Key, state, err))
		}
		return presence.Outcome{Op: op, Result: presence.ResultApplied}
	case presence.OpPresence:
		if op.Presence == nil {
			return presence.Failed(op, fmt.Errorf("presence %s: operation has no presence state", op.Key))
		}
		if err := checkProvider(op.Key); err != nil {
			return presence.Failed(op, fmt.Errorf("presence %s: %w", op.Key, err))
		}
		v, err := FormatPresence(op.Presence.State, op.Presence.Message)
		if err != nil {
			return presence.Failed(op, fmt.Errorf("presence %s: %w", op.Key, err))
		}
		if err := c.setvar(ctx, "PRESENCE_STATE("+op.Key+")", v); err != nil {
			return presence.Failed(op, fmt.Errorf("presence %s %s: %w", op.Key, op.Presence.State, err))
		}
		return presence.Outcome{Op: op, Result: presence.ResultApplied}
	}
	return c.base.Unsupported(op)
}

// setvar sets a function without a channel within the in-flight bound.
func (c *Concern) setvar(ctx context.Context, variable, value string) error {
	_, err := c.base.Do(ctx, ami.Setvar{Variable: variable, Value: value})
	return err
}

// FormatPresence returns the PRESENCE_STATE() value that sets state (any case) and message:
// "state,,message", or "state,,base64(message),e" when the message contains a comma. It fails
// for an unknown state, for a message with CR, LF or NUL, which Asterisk's replies cannot
// carry, and for a message with a comma longer than MaxEncodedMessage bytes, which Asterisk
// would cut (and presenced would then find different and write again at every repair).
func FormatPresence(state, message string) (string, error) {
	s := strings.ToLower(state)
	if !slices.Contains(presence.PresenceStates(), s) {
		return "", fmt.Errorf("state %q is not one of %s", state, strings.Join(presence.PresenceStates(), ", "))
	}
	if strings.ContainsAny(message, "\r\n\x00") {
		return "", errors.New("message contains CR, LF or NUL")
	}
	if strings.Contains(message, ",") {
		if len(message) > MaxEncodedMessage {
			return "", fmt.Errorf("message with commas is %d bytes, Asterisk keeps at most %d of it", len(message), MaxEncodedMessage)
		}
		return s + ",," + base64.StdEncoding.EncodeToString([]byte(message)) + ",e", nil
	}
	return s + ",," + message, nil
}

// checkDevice accepts a writable device name (Custom:, the only one DEVICE_STATE can set over
// AMI) that cannot break out of DEVICE_STATE(...), and a settable state.
func checkDevice(name, state string) error {
	if err := checkName(name, "Custom:"); err != nil {
		return err
	}
	if !slices.Contains(presence.LampStates(), state) {
		return fmt.Errorf("state %q is not one of %s", state, strings.Join(presence.LampStates(), ", "))
	}
	return nil
}

func checkProvider(name string) error { return checkName(name, "CustomPresence:") }

func checkName(name, prefix string) error {
	if !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
		return fmt.Errorf("not a %s device (only those can be set over AMI)", prefix)
	}
	if strings.ContainsAny(name, "(),|&\"'\\ \t\r\n\x00") {
		return errors.New("name contains characters that would break the function call")
	}
	return nil
}

// unescapeC undoes ast_escape_c, which Asterisk applies to the Subtype and Message of
// PresenceStateChange events and PresenceStateList items. Unknown escapes stay as they are.
func unescapeC(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		r, ok := cUnescape(s[i+1])
		if !ok {
			b.WriteByte(s[i])
			continue
		}
		b.WriteByte(r)
		i++
	}
	return b.String()
}

// cUnescape maps the letter after a backslash to the byte ast_escape_c replaced with it
// (main/utils.c escape_sequences and escape_sequences_map).
func cUnescape(c byte) (byte, bool) {
	switch c {
	case 'a':
		return '\a', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'v':
		return '\v', true
	case '\\', '\'', '"', '?':
		return c, true
	}
	return 0, false
}
