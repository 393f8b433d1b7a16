package ami

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goami "github.com/heltonmarx/goami/ami"
)

// OriginateSpec describes a call to originate. Set Channel plus either
// Context/Exten/Priority or Application/Data.
type OriginateSpec struct {
	Channel     string // required, e.g. "Local/wait@test-helpers"
	Context     string
	Exten       string
	Priority    int // default 1 when Exten is set
	Application string
	Data        string
	CallerID    string        // e.g. `"Alice" <1001>`
	Timeout     time.Duration // time to answer; 0 = Asterisk's default (30 s); sent in ms
	Async       bool          // return at once ("Originate successfully queued"); the outcome arrives as an OriginateResponse event carrying the same ActionID
	Account     string
	// ChannelID and OtherChannelID set the uniqueids of the new channel
	// and, for Local channels, of its ;2 half.
	ChannelID, OtherChannelID string
	// Variables are set on the new channel. Values may contain commas,
	// quotes, parentheses and backslashes: they are escaped for
	// Asterisk's argument parser, which otherwise splits a Variable
	// header at commas.
	Variables map[string]string
}

// Originate is the Originate action (write class originate, plus system
// for some applications); encoded by goami after escaping the variables.
type Originate OriginateSpec

// ActionName implements [Action].
func (Originate) ActionName() string { return "Originate" }

// ActionHeaders implements [Action].
func (a Originate) ActionHeaders() ([]Header, error) {
	if err := require("Originate", "Channel", a.Channel); err != nil {
		return nil, err
	}
	if a.Exten == "" && a.Application == "" {
		return nil, fmt.Errorf("%w: Originate: Exten or Application is required", ErrInvalidHeader)
	}
	if err := checkValues("Originate", "Channel", a.Channel, "Context", a.Context, "Exten", a.Exten,
		"Application", a.Application, "Data", a.Data, "CallerID", a.CallerID, "Account", a.Account,
		"ChannelId", a.ChannelID, "OtherChannelId", a.OtherChannelID); err != nil {
		return nil, err
	}
	if a.Priority < 0 || a.Timeout < 0 {
		return nil, fmt.Errorf("%w: Originate: Priority and Timeout must not be negative", ErrInvalidHeader)
	}
	names := make([]string, 0, len(a.Variables))
	for k := range a.Variables {
		names = append(names, k)
	}
	slices.Sort(names)
	vars := make([]string, 0, len(names))
	for _, k := range names {
		v := a.Variables[k]
		if k == "" || strings.ContainsAny(k, "=,\\\"()[] \t") {
			return nil, fmt.Errorf("%w: Originate: bad variable name %q", ErrInvalidHeader, k)
		}
		if err := checkValues("Originate", "Variable "+k, v, "Variable name", k); err != nil {
			return nil, err
		}
		vars = append(vars, k+"="+escapeAppArg(v))
	}
	prio := a.Priority
	if prio == 0 && a.Exten != "" {
		prio = 1
	}
	async := ""
	if a.Async {
		async = "true"
	}
	return viaGoami("Originate", func(ctx context.Context, c goami.Client) error {
		return one(goami.Originate(ctx, c, "", goami.OriginateData{
			Channel:        a.Channel,
			Exten:          a.Exten,
			Context:        a.Context,
			Priority:       prio,
			Application:    a.Application,
			Data:           a.Data,
			Timeout:        int(a.Timeout / time.Millisecond),
			CallerID:       a.CallerID,
			Variable:       vars,
			Account:        a.Account,
			Async:          async,
			ChannelID:      a.ChannelID,
			OtherChannelID: a.OtherChannelID,
		}))
	})
}

// escapeAppArg escapes s for Asterisk's application argument parser
// (__ast_app_separate_args with remove_chars, used on Variable headers):
// a backslash makes the next character literal, so commas do not split,
// and quotes, parentheses and brackets do not group.
func escapeAppArg(s string) string {
	if !strings.ContainsAny(s, "\\,\"()[]") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', ',', '"', '(', ')', '[', ']':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Originate starts a call. With Async it returns once Asterisk queued it;
// otherwise when the channel answered or failed.
func (c *Client) Originate(ctx context.Context, o OriginateSpec) error {
	if _, err := c.Do(ctx, Originate(o)); err != nil {
		target := o.Application
		if o.Exten != "" {
			target = o.Exten + "@" + o.Context
		}
		return fmt.Errorf("ami: originate %s to %s: %w", o.Channel, target, err)
	}
	return nil
}

// PlayDTMF is the PlayDTMF action (write class call). With Receive the
// digit is queued on the channel as if received from the far end (what a
// Stasis app on that channel sees as ChannelDtmfReceived); without it the
// digit is sent out of the channel. Encoded here: goami's PlayDTMF has no
// Receive parameter.
type PlayDTMF struct {
	Channel  string
	Digit    string
	Duration time.Duration // 0 = Asterisk's default; sent in ms
	Receive  bool
}

// ActionName implements [Action].
func (PlayDTMF) ActionName() string { return "PlayDTMF" }

// ActionHeaders implements [Action].
func (a PlayDTMF) ActionHeaders() ([]Header, error) {
	if err := require("PlayDTMF", "Channel", a.Channel, "Digit", a.Digit); err != nil {
		return nil, err
	}
	if err := checkValues("PlayDTMF", "Channel", a.Channel, "Digit", a.Digit); err != nil {
		return nil, err
	}
	if a.Duration < 0 {
		return nil, fmt.Errorf("%w: PlayDTMF: Duration must not be negative", ErrInvalidHeader)
	}
	dur := ""
	if a.Duration > 0 {
		dur = strconv.FormatInt(a.Duration.Milliseconds(), 10)
	}
	recv := ""
	if a.Receive {
		recv = "true"
	}
	return headers("Channel", a.Channel, "Digit", a.Digit, "?Duration", dur, "?Receive", recv), nil
}

// PlayDTMF plays digit on channel; see [PlayDTMF] for receive.
func (c *Client) PlayDTMF(ctx context.Context, channel, digit string, duration time.Duration, receive bool) error {
	if _, err := c.Do(ctx, PlayDTMF{Channel: channel, Digit: digit, Duration: duration, Receive: receive}); err != nil {
		return fmt.Errorf("ami: play DTMF %s on %s: %w", digit, channel, err)
	}
	return nil
}

// Hangup is the Hangup action (write class system or call); encoded by
// goami. Channel is a channel name or "/regex/".
type Hangup struct {
	Channel string
	Cause   int // Q.850 cause; 0 = Asterisk's default
}

// ActionName implements [Action].
func (Hangup) ActionName() string { return "Hangup" }

// ActionHeaders implements [Action].
func (a Hangup) ActionHeaders() ([]Header, error) {
	if err := require("Hangup", "Channel", a.Channel); err != nil {
		return nil, err
	}
	if err := checkValues("Hangup", "Channel", a.Channel); err != nil {
		return nil, err
	}
	cause := ""
	if a.Cause > 0 {
		cause = strconv.Itoa(a.Cause)
	}
	hs, err := viaGoami("Hangup", func(ctx context.Context, c goami.Client) error {
		return one(goami.Hangup(ctx, c, "", a.Channel, cause))
	})
	if err != nil {
		return nil, err
	}
	if cause == "" {
		m := Message{Headers: hs}
		m.Del("Cause")
		hs = m.Headers
	}
	return hs, nil
}

// Hangup hangs up channel (a name or "/regex/"). An unknown channel gives
// "No such channel".
func (c *Client) Hangup(ctx context.Context, channel string, cause int) error {
	if _, err := c.Do(ctx, Hangup{Channel: channel, Cause: cause}); err != nil {
		return fmt.Errorf("ami: hangup %s: %w", channel, err)
	}
	return nil
}

// CoreShowChannels is the CoreShowChannels list action (write class system
// or reporting); encoded by goami.
type CoreShowChannels struct{}

// ActionName implements [Action].
func (CoreShowChannels) ActionName() string { return "CoreShowChannels" }

// ActionHeaders implements [Action].
func (CoreShowChannels) ActionHeaders() ([]Header, error) {
	return viaGoami("CoreShowChannels", func(ctx context.Context, c goami.Client) error {
		return many(goami.CoreShowChannels(ctx, c, ""))
	})
}

// ChannelInfo is one CoreShowChannel item.
type ChannelInfo struct {
	Channel           string
	Uniqueid          string
	Linkedid          string
	State             int    // ChannelState
	StateDesc         string // ChannelStateDesc, e.g. "Up"
	CallerIDNum       string
	CallerIDName      string
	ConnectedLineNum  string
	ConnectedLineName string
	Context           string
	Exten             string
	Priority          int
	Application       string
	ApplicationData   string
	Duration          string // "HH:MM:SS"
	BridgeID          string
	Raw               *Message
}

// CoreShowChannels lists the active channels.
func (c *Client) CoreShowChannels(ctx context.Context) ([]ChannelInfo, error) {
	l, err := c.List(ctx, CoreShowChannels{})
	if err != nil {
		return nil, fmt.Errorf("ami: core show channels: %w", err)
	}
	var out []ChannelInfo
	for _, m := range l.Items {
		if !equalFold(m.Event(), "CoreShowChannel") {
			continue
		}
		out = append(out, ChannelInfo{
			Channel:           m.Get("Channel"),
			Uniqueid:          m.Get("Uniqueid"),
			Linkedid:          m.Get("Linkedid"),
			State:             fieldInt(m, "ChannelState"),
			StateDesc:         m.Get("ChannelStateDesc"),
			CallerIDNum:       m.Get("CallerIDNum"),
			CallerIDName:      m.Get("CallerIDName"),
			ConnectedLineNum:  m.Get("ConnectedLineNum"),
			ConnectedLineName: m.Get("ConnectedLineName"),
			Context:           m.Get("Context"),
			Exten:             m.Get("Exten"),
			Priority:          fieldInt(m, "Priority"),
			Application:       m.Get("Application"),
			ApplicationData:   m.Get("ApplicationData"),
			Duration:          m.Get("Duration"),
			BridgeID:          m.Get("BridgeId"),
			Raw:               m,
		})
	}
	return out, nil
}
