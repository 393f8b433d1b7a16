package ami

import (
	"errors"
	"strings"
)

var (
	// ErrNotConnected is returned at once by calls made while the Client
	// has no logged-in connection. Nothing is buffered: the action was
	// not sent and may be retried later ([SafeToRetry] reports true).
	ErrNotConnected = errors.New("ami: not connected")

	// ErrConnClosed is wrapped by the error of every call that was waiting
	// for its reply when the connection dropped. The action may or may not
	// have been executed by Asterisk.
	ErrConnClosed = errors.New("ami: connection closed")

	// ErrInvalidHeader is wrapped by the error of a call whose action could
	// not be encoded: a value containing CR, LF or NUL (header injection),
	// a bad header key, a missing required field, or an ActionID supplied
	// by the caller. Such actions are never sent.
	ErrInvalidHeader = errors.New("ami: invalid header")

	// ErrGated is wrapped by the error of a call whose action Config.Gate
	// kept off the wire (presenced: this instance does not hold the
	// leadership). It was not sent ([SafeToRetry] reports true).
	ErrGated = errors.New("ami: gated")

	// ErrPermissionDenied matches (with errors.Is) a [*ResponseError] whose
	// message is Asterisk's "Permission denied": the AMI user lacks the
	// write class the action needs (see manager.conf).
	ErrPermissionDenied = errors.New("ami: permission denied")

	// ErrListIncomplete is wrapped by the error of a list action whose Complete event counts
	// more (or fewer) items (ListItems) than arrived. Asterisk drops what a session does not
	// take within manager.conf's writetimeout, so a reader held up in the middle of a long
	// list (a 30 MB QueueStatus) can lose items and still see the Complete event. A read, it
	// may be sent again.
	ErrListIncomplete = errors.New("ami: list incomplete")
)

// ResponseError is an action that Asterisk answered with "Response: Error".
// Message is Asterisk's text verbatim, e.g. "Unable to add interface:
// Already there". The ami package only reports it; deciding that some
// errors are harmless is the caller's policy.
type ResponseError struct {
	Action   string   // AMI action name, e.g. "QueueAdd"
	Message  string   // Asterisk's Message header
	Response *Message // the whole reply (e.g. Command's Output lines); may be nil
}

// Error returns "<Action> failed: <Asterisk's message>".
func (e *ResponseError) Error() string {
	if e.Message == "" {
		return e.Action + " failed"
	}
	return e.Action + " failed: " + e.Message
}

// Is makes errors.Is(err, ErrPermissionDenied) true for Asterisk's
// "Permission denied" reply.
func (e *ResponseError) Is(target error) bool {
	return target == ErrPermissionDenied && strings.EqualFold(e.Message, "Permission denied")
}

// ResponseMessage returns Asterisk's message if err is or wraps a
// [*ResponseError].
func ResponseMessage(err error) (msg string, ok bool) {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.Message, true
	}
	return "", false
}

// SafeToRetry reports whether err means the action certainly never reached
// Asterisk (the client was not connected), so retrying it cannot apply it
// twice.
func SafeToRetry(err error) bool {
	return errors.Is(err, ErrNotConnected) || errors.Is(err, ErrGated)
}
