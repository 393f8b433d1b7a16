package ami

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goami "github.com/heltonmarx/goami/ami"
)

// How goami is used
//
// goami (github.com/heltonmarx/goami/ami) is a function-per-action library
// over its own socket. Its socket cannot be used by a daemon: responses are
// taken by whatever message comes next (events steal them), ActionIDs are
// never matched, Send formats with Fprintf (so '%' in values is mangled)
// and a timeout leaves the stream out of step. Its action encoders are fine for most actions, though, so this
// package keeps them and replaces everything around them:
//
// captureClient implements goami's Client interface. A goami action
// function (goami.QueueAdd, goami.DBPut, ...) called with it encodes its
// action and hands the text to Send, which captures it; the following Recv
// returns errCaptured, so the function returns at once without reading
// anything. The captured text is parsed with this package's Reader into
// headers; "Action" and "ActionID" are dropped, because the Client writes
// its own (goami is given no ActionID). goami's response handling is never
// used.
//
// Encoded with goami: Login, Ping, ExtensionState, ExtensionStateList,
// DeviceStateList, Originate, Hangup, CoreShowChannels, CoreStatus, Command.
// Caller values are checked for CR/LF before they reach goami (a CR LF would
// already be extra header lines in its output), and Originate's Variable
// values are escaped here before goami sees them.
//
// Encoded here instead, and why:
//   - QueueAdd, QueueRemove, QueuePause, QueuePenalty, DBPut, DBGet, DBDel,
//     DBDelTree, Setvar, Getvar, PresenceState: the actions of every switch.
//     goami's reflection, the capture and the parse of its text took about
//     an eighth of presenced's CPU in a mass switch, beside Asterisk on the
//     same cores (docs/BENCHMARKS.md). goami's encoders remain the reference:
//     TestEncodersMatchGoami and FuzzEncodersMatchGoami require the same
//     headers from both for any input.
//   - DBGetTree, UserEvent: goami has no such action.
//   - PlayDTMF: goami's encoder has no Receive parameter.
//   - PresenceStateList: goami's function waits for the wrong event
//     ("Agents" instead of PresenceStateChange); the action itself has no
//     parameters, so a local encoder is simpler than borrowing a broken
//     function for one line.
//   - QueueStatus: goami's QueueStatus reads a single response and leaves
//     the list in the socket; QueueStatuses drops QueueParams. Neither
//     encodes more than Queue and Member, so they are written here too.
//   - QueueSummary: goami's is a list helper that swallows errors; the
//     local encoder is one line.

// errCaptured ends a goami function right after it sent its action.
var errCaptured = errors.New("ami: goami action captured")

// captureClient is a goami Client that records what goami sends.
type captureClient struct {
	text strings.Builder
	sent bool
}

func (c *captureClient) Connected() bool                      { return true }
func (c *captureClient) Close(context.Context) error          { return nil }
func (c *captureClient) Recv(context.Context) (string, error) { return "", errCaptured }
func (c *captureClient) Send(message string) error {
	c.sent = true
	c.text.WriteString(message)
	return nil
}

var _ goami.Client = (*captureClient)(nil)

// viaGoami runs a goami action function against a captureClient and
// returns the headers it encoded, without Action and ActionID.
func viaGoami(name string, f func(ctx context.Context, c goami.Client) error) ([]Header, error) {
	var cc captureClient
	err := f(context.Background(), &cc)
	if !cc.sent {
		return nil, fmt.Errorf("ami: encode %s with goami: %w", name, err)
	}
	m, rerr := NewReader(strings.NewReader(cc.text.String())).ReadMessage()
	if rerr != nil {
		return nil, fmt.Errorf("ami: encode %s with goami: parse %q: %w", name, cc.text.String(), rerr)
	}
	if got := m.Get("Action"); !strings.EqualFold(got, name) {
		return nil, fmt.Errorf("ami: encode %s with goami: got action %q", name, got)
	}
	m.Del("Action")
	m.Del("ActionID")
	return m.Headers, nil
}

// Ignore wraps goami functions returning (Response, error) or
// ([]Response, error) so they fit viaGoami.
func one(_ goami.Response, err error) error    { return err }
func many(_ []goami.Response, err error) error { return err }
