package featurecode

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ariv6 "github.com/CyCoreSystems/ari/v6"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/presence"
)

// The unit tests drive calls through an App with fakes of ARI (fakeChannels), the engine
// (fakeEngine) and the state store (fakeStates), and a miniredis for the PIN counters: every
// playback finishes at once, digits come as ChannelDtmfReceived events on the App's stream.

// fakeChannels plays nothing: every Play finishes at once (a PlaybackFinished on events).
type fakeChannels struct {
	events chan<- ari.Event

	// gate, when set before a call, holds every Answer until it is closed.
	gate chan struct{}

	mu         sync.Mutex
	played     map[string][]string // channel ID -> every medium played, in order
	hangups    map[string]int
	answered   map[string]bool
	unanswered []string // media played on a channel not answered yet
}

func (f *fakeChannels) Answer(ctx context.Context, id string) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.answered[id] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeChannels) Hangup(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hangups[id]++
	return nil
}

func (f *fakeChannels) Play(_ context.Context, channelID, playbackID string, media ...string) error {
	f.mu.Lock()
	f.played[channelID] = append(f.played[channelID], media...)
	if !f.answered[channelID] {
		f.unanswered = append(f.unanswered, media...)
	}
	f.mu.Unlock()
	select {
	case f.events <- &ari.PlaybackFinished{Playback: ari.PlaybackData{ID: playbackID, TargetURI: "channel:" + channelID, State: "done"}}:
	default: // the test's stream is full: the prompt never ends (the call times out)
	}
	return nil
}

func (f *fakeChannels) PlayAndWait(context.Context, string, string, ...string) error {
	return errors.New("PlayAndWait is not used by feature-code calls")
}

func (f *fakeChannels) StopPlayback(context.Context, string) error { return nil }

func (f *fakeChannels) Channel(_ context.Context, id string) (ari.ChannelData, error) {
	return ari.ChannelData{ID: id}, nil
}

func (f *fakeChannels) media(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.played[id])
}

// fakeEngine records switches; every user's profiles are the system-wide ones.
type fakeEngine struct {
	cat   *presence.Catalog
	bound map[string]presence.UserID // hot desk → the user bound to it

	mu       sync.Mutex
	switches []presence.SwitchRequest
}

func (e *fakeEngine) Catalog() *presence.Catalog { return e.cat }

// BoundTo finds the user bound to a hot desk in e.bound (device → user).
func (e *fakeEngine) BoundTo(_ context.Context, device string) (*presence.User, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.bound[device]
	if !ok {
		return nil, false, nil
	}
	u, ok := e.cat.User(id)
	return u, ok, nil
}

func (e *fakeEngine) Profiles(_ context.Context, id presence.UserID) ([]*presence.Profile, error) {
	if _, ok := e.cat.User(id); !ok {
		return nil, presence.ErrUnknownUser
	}
	return e.cat.Profiles, nil
}

func (e *fakeEngine) Switch(_ context.Context, req presence.SwitchRequest) (*presence.SwitchResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.switches = append(e.switches, req)
	return &presence.SwitchResult{InSync: true}, nil
}

func (e *fakeEngine) SwitchDND(ctx context.Context, req presence.DNDRequest) (*presence.SwitchResult, bool, error) {
	res, err := e.Switch(ctx, presence.SwitchRequest{User: req.User, Profile: presence.ProfileDND, Source: req.Source, Actor: req.Actor})
	return res, true, err
}

func (e *fakeEngine) taken() []presence.SwitchRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.switches
	e.switches = nil
	return out
}

// fakeStates says every user is in available.
type fakeStates struct{}

func (fakeStates) Load(context.Context, presence.UserID) (presence.UserState, bool, error) {
	return presence.UserState{Profile: presence.ProfileAvailable}, true, nil
}

// identityCatalog: alice (1001, PIN 1234, a desk phone and a mobile), bob (1002, no PIN),
// carol (1003, PIN 4321).
func identityCatalog(t testing.TB) *presence.Catalog {
	t.Helper()
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{
		{ID: "alice", Name: "Alice", Extension: "1001", PIN: "1234", Devices: []presence.Device{
			{Dial: "PJSIP/1001", Family: presence.FamilyDesk}, {Dial: "PJSIP/1001-mobile", Family: presence.FamilyMobile}}},
		{ID: "bob", Extension: "1002", Devices: []presence.Device{{Dial: "PJSIP/1002", Family: presence.FamilyDesk}}},
		{ID: "carol", Extension: "1003", PIN: "4321", Devices: []presence.Device{{Dial: "PJSIP/1003", Family: presence.FamilyDesk}}},
	}, Profiles: []presence.Profile{
		{ID: "lunch", Name: "Lunch", Activation: "3"},
		{ID: "meeting", Name: "Meeting", Activation: "4"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// trustedContext is the context the harness's App trusts.
const trustedContext = "from-internal-trusted"

// harness runs an App over the fakes.
type harness struct {
	app      *App
	events   chan ari.Event
	channels *fakeChannels
	engine   *fakeEngine
	outcomes chan Outcome
	// ended holds the outcomes outcome read while it waited for another call's.
	ended map[string]Outcome
	stop  func() // ends Run and waits for it
}

// newHarness starts an App; opts may set AlwaysPIN and the timeouts, the rest is filled in.
func newHarness(t testing.TB, rdb redis.Cmdable, opts Options) *harness {
	t.Helper()
	h := &harness{
		events:   make(chan ari.Event, 1024),
		engine:   &fakeEngine{cat: identityCatalog(t), bound: map[string]presence.UserID{"PJSIP/hotdesk-1": "alice"}},
		outcomes: make(chan Outcome, 16),
		ended:    map[string]Outcome{},
	}
	h.channels = &fakeChannels{events: h.events, played: map[string][]string{}, hangups: map[string]int{}, answered: map[string]bool{}}
	opts.Channels, opts.Engine, opts.States, opts.Redis = h.channels, h.engine, fakeStates{}, rdb
	if opts.TrustedContexts == nil {
		opts.TrustedContexts = []string{trustedContext}
	}
	opts.Observe = func(o Outcome) { h.outcomes <- o }
	app, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.Run(ctx, h.events)
	}()
	h.stop = func() {
		cancel()
		<-done
	}
	return h
}

// testRedis is a miniredis for the PIN counters.
func testRedis(t testing.TB) *redis.Client {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: 1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// testCall is one call: what enters the application and what the caller does.
type testCall struct {
	id, channel, context, callerID string
	args                           []string
	// keys are DTMF digits keyed in; 'h' hangs up there, 'p' is a PlaybackFinished of no
	// playback of the call.
	keys string
}

// send starts the call and sends its keys.
func (h *harness) send(c testCall) {
	ch := ari.ChannelData{ID: c.id, Name: c.channel, Caller: &ariv6.CallerID{Number: c.callerID},
		Dialplan: &ariv6.DialplanCEP{Context: c.context, AppName: "Stasis"}}
	h.events <- &ari.StasisStart{Args: c.args, Channel: ch}
	for _, k := range c.keys {
		switch {
		case k == 'h':
			h.events <- &ari.ChannelHangupRequest{Channel: ch}
		case k == 'p':
			h.events <- &ari.PlaybackFinished{Playback: ari.PlaybackData{ID: "stray", TargetURI: "channel:" + c.id}}
		default:
			h.events <- &ari.ChannelDtmfReceived{Channel: ch, Digit: string(k)}
		}
	}
}

// outcome waits for the outcome of call id, whichever call ends first.
func (h *harness) outcome(t testing.TB, id string, within time.Duration) Outcome {
	t.Helper()
	if o, ok := h.ended[id]; ok {
		delete(h.ended, id)
		return o
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case o := <-h.outcomes:
			if o.ChannelID == id {
				return o
			}
			h.ended[o.ChannelID] = o
		case <-timer.C:
			t.Fatalf("call %s did not end within %v", id, within)
			return Outcome{}
		}
	}
}

// askedPIN reports whether the call heard the PIN prompt.
func (h *harness) askedPIN(id string) bool {
	return slices.Contains(h.channels.media(id), soundPIN)
}

// args splits a Stasis() argument string as Asterisk does (commas; empty arguments kept).
func args(s string) []string { return strings.Split(s, ",") }
