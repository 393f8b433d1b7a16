package ami

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goami "github.com/heltonmarx/goami/ami"
)

// typedActions lists the actions this package has typed helpers for; their
// presenced_ami_actions_total series are created at 0.
func typedActions() []string {
	return []string{
		"Ping", "QueueAdd", "QueueRemove", "QueuePause", "QueuePenalty", "QueueStatus", "QueueSummary",
		"DBPut", "DBGet", "DBGetTree", "DBDel", "DBDelTree", "Setvar", "Getvar",
		"ExtensionState", "ExtensionStateList", "DeviceStateList", "PresenceState", "PresenceStateList",
		"Originate", "PlayDTMF", "Hangup", "CoreShowChannels", "UserEvent", "CoreStatus", "Command",
	}
}

// loginAction is the Login action; the Client sends it itself.
type loginAction struct{ username, secret, events string }

func (loginAction) ActionName() string { return "Login" }

func (a loginAction) ActionHeaders() ([]Header, error) {
	if err := checkValues("Login", "Username", a.username, "Secret", a.secret, "Events", a.events); err != nil {
		return nil, err
	}
	return viaGoami("Login", func(ctx context.Context, c goami.Client) error {
		return goami.Login(ctx, c, a.username, a.secret, a.events, "")
	})
}

// Ping is the keepalive action. Asterisk answers "Ping: Pong".
type Ping struct{}

// ActionName implements [Action].
func (Ping) ActionName() string { return "Ping" }

// ActionHeaders implements [Action]; encoded by goami.
func (Ping) ActionHeaders() ([]Header, error) {
	return viaGoami("Ping", func(ctx context.Context, c goami.Client) error {
		return goami.Ping(ctx, c, "")
	})
}

// Ping sends a Ping action and waits for the answer.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.Do(ctx, Ping{}); err != nil {
		return fmt.Errorf("ami: ping: %w", err)
	}
	return nil
}

// UserEvent makes Asterisk emit "Event: UserEvent" with "UserEvent: Name"
// and Headers to every AMI session whose read class includes user. It
// needs write class user. Encoded here: goami has no UserEvent.
type UserEvent struct {
	Name    string
	Headers []Header
}

// ActionName implements [Action].
func (UserEvent) ActionName() string { return "UserEvent" }

// ActionHeaders implements [Action].
func (a UserEvent) ActionHeaders() ([]Header, error) {
	if err := require("UserEvent", "Name", a.Name); err != nil {
		return nil, err
	}
	if err := checkValues("UserEvent", "Name", a.Name); err != nil {
		return nil, err
	}
	hs := []Header{{Key: "UserEvent", Value: a.Name}}
	for _, h := range a.Headers {
		if err := validateHeader(h.Key, h.Value); err != nil {
			return nil, fmt.Errorf("UserEvent: %w", err)
		}
		if strings.EqualFold(h.Key, "UserEvent") {
			return nil, fmt.Errorf("%w: UserEvent: the UserEvent header is set from Name", ErrInvalidHeader)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// UserEvent emits a UserEvent named name with the given extra headers
// (values may contain '%', ':' and commas; CR and LF are refused).
func (c *Client) UserEvent(ctx context.Context, name string, headers ...Header) error {
	if _, err := c.Do(ctx, UserEvent{Name: name, Headers: headers}); err != nil {
		return fmt.Errorf("ami: user event %s: %w", name, err)
	}
	return nil
}

// CoreStatusAction is the CoreStatus action (named so because
// [CoreStatus] is its typed result). It needs write class system or
// reporting.
type CoreStatusAction struct{}

// ActionName implements [Action].
func (CoreStatusAction) ActionName() string { return "CoreStatus" }

// ActionHeaders implements [Action]; encoded by goami.
func (CoreStatusAction) ActionHeaders() ([]Header, error) {
	return viaGoami("CoreStatus", func(ctx context.Context, c goami.Client) error {
		return one(goami.CoreStatus(ctx, c, ""))
	})
}

// CoreStatus is the reply to CoreStatus. Dates and times are Asterisk's
// local time as text, e.g. "2026-11-05" and "10:41:07"; comparing them
// with an earlier reply detects a restart or reload that happened while
// disconnected.
type CoreStatus struct {
	StartupDate, StartupTime string
	ReloadDate, ReloadTime   string
	CurrentCalls             int
	ProcessedCalls           int // calls since start
	Raw                      *Message
}

// Startup returns the start time, interpreting Asterisk's local time in
// loc (time.Local if nil).
func (s CoreStatus) Startup(loc *time.Location) (time.Time, error) {
	return parseCoreTime(s.StartupDate, s.StartupTime, loc)
}

// Reload returns the last reload time, like Startup.
func (s CoreStatus) Reload(loc *time.Location) (time.Time, error) {
	return parseCoreTime(s.ReloadDate, s.ReloadTime, loc)
}

func parseCoreTime(date, clock string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.Local
	}
	return time.ParseInLocation("2006-01-02 15:04:05", date+" "+clock, loc)
}

// CoreStatus returns Asterisk's start and reload times and its number of
// current calls.
func (c *Client) CoreStatus(ctx context.Context) (CoreStatus, error) {
	m, err := c.Do(ctx, CoreStatusAction{})
	if err != nil {
		return CoreStatus{}, fmt.Errorf("ami: core status: %w", err)
	}
	return CoreStatus{
		StartupDate:    m.Get("CoreStartupDate"),
		StartupTime:    m.Get("CoreStartupTime"),
		ReloadDate:     m.Get("CoreReloadDate"),
		ReloadTime:     m.Get("CoreReloadTime"),
		CurrentCalls:   fieldInt(m, "CoreCurrentCalls"),
		ProcessedCalls: fieldInt(m, "CoreProcessedCalls"),
		Raw:            m,
	}, nil
}

// Command runs a CLI command. It needs write class command, which a
// production user should not have; it exists for tests and diagnostics.
type Command struct {
	Command string
}

// ActionName implements [Action].
func (Command) ActionName() string { return "Command" }

// ActionHeaders implements [Action]; encoded by goami.
func (a Command) ActionHeaders() ([]Header, error) {
	if err := require("Command", "Command", a.Command); err != nil {
		return nil, err
	}
	if err := checkValues("Command", "Command", a.Command); err != nil {
		return nil, err
	}
	return viaGoami("Command", func(ctx context.Context, c goami.Client) error {
		return one(goami.Command(ctx, c, "", a.Command))
	})
}

// Command runs a CLI command and returns its output lines (the repeated
// Output headers, in order).
func (c *Client) Command(ctx context.Context, cmd string) ([]string, error) {
	m, err := c.Do(ctx, Command{Command: cmd})
	if err != nil {
		var re *ResponseError
		if errors.As(err, &re) && len(re.Response.Values("Output")) > 0 {
			// "Command output follows" says little; the output says why.
			return nil, fmt.Errorf("ami: command %q: %w: %s", cmd, err, strings.Join(re.Response.Values("Output"), " / "))
		}
		return nil, fmt.Errorf("ami: command %q: %w", cmd, err)
	}
	return m.Values("Output"), nil
}
