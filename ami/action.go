package ami

import (
	"fmt"
	"strings"
)

// Action is an AMI action that a [Client] can send with Do or List.
//
// The package provides typed actions (QueueAdd, DBPut, Originate, ...); for a
// rare one, implement Action (the Client validates what it sends all the same).
// Implementations return only their own parameters:
// the Client adds "Action:" and a unique "ActionID:" itself, and refuses
// an ActionID header from the action.
type Action interface {
	// ActionName returns the AMI action name, e.g. "QueueAdd".
	ActionName() string
	// ActionHeaders returns the action's parameters in wire order. It
	// fails (wrapping ErrInvalidHeader) rather than return a value that
	// contains CR or LF.
	ActionHeaders() ([]Header, error)
}

// Asterisk's limits on what it accepts from an AMI client (main/manager.c:
// a 1025-byte input buffer, AST_MAX_MANHEADERS). Asterisk 22 answers an
// action over them with "Failed to parse message: line too long" or "Too
// many lines in message or allocation failure"; the Client refuses such an
// action before sending it.
const (
	// MaxActionLineLength is the longest "Key: Value" line of an action,
	// without CR LF.
	MaxActionLineLength = 1022
	// MaxActionHeaders is the largest number of headers of an action,
	// Action and ActionID included.
	MaxActionHeaders = 128
)

// buildAction encodes a with the given ActionID into a complete, validated
// message.
func buildAction(a Action, id string) (*Message, error) {
	name := a.ActionName()
	if name == "" || strings.ContainsAny(name, "\r\n\x00") {
		return nil, fmt.Errorf("%w: bad action name %q", ErrInvalidHeader, name)
	}
	hs, err := a.ActionHeaders()
	if err != nil {
		return nil, err
	}
	m := &Message{Headers: make([]Header, 0, len(hs)+2)}
	m.Add("Action", name)
	m.Add("ActionID", id)
	for _, h := range hs {
		if strings.EqualFold(h.Key, "ActionID") {
			return nil, fmt.Errorf("%w: ActionID is assigned by the client, not the action", ErrInvalidHeader)
		}
		if strings.EqualFold(h.Key, "Action") {
			return nil, fmt.Errorf("%w: Action header given twice", ErrInvalidHeader)
		}
		m.Headers = append(m.Headers, h)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if len(m.Headers) > MaxActionHeaders {
		return nil, fmt.Errorf("%w: %s: %d headers, Asterisk accepts at most %d", ErrInvalidHeader, name, len(m.Headers), MaxActionHeaders)
	}
	for _, h := range m.Headers {
		if n := len(h.Key) + 2 + len(h.Value); n > MaxActionLineLength {
			return nil, fmt.Errorf("%w: %s: %s: line of %d bytes, Asterisk accepts at most %d", ErrInvalidHeader, name, h.Key, n, MaxActionLineLength)
		}
	}
	return m, nil
}

// checkValues validates caller-supplied values before they are encoded. It
// takes name/value pairs so the error names the offending field. Checking
// before encoding matters for goami's encoders: a CR LF inside a value
// would already have become extra header lines in their output.
func checkValues(action string, nv ...string) error {
	for i := 0; i+1 < len(nv); i += 2 {
		v := nv[i+1]
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%w: %s: %s contains CR or LF (header injection refused)", ErrInvalidHeader, action, nv[i])
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: %s: %s contains NUL", ErrInvalidHeader, action, nv[i])
		}
	}
	return nil
}

// require reports the first empty value among name/value pairs.
func require(action string, nv ...string) error {
	for i := 0; i+1 < len(nv); i += 2 {
		if nv[i+1] == "" {
			return fmt.Errorf("%w: %s: %s is required", ErrInvalidHeader, action, nv[i])
		}
	}
	return nil
}

// headers builds a header list from name/value pairs, leaving out pairs
// whose value is empty when the name is prefixed with "?".
func headers(nv ...string) []Header {
	hs := make([]Header, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		k, v := nv[i], nv[i+1]
		if strings.HasPrefix(k, "?") {
			if v == "" {
				continue
			}
			k = k[1:]
		}
		hs = append(hs, Header{Key: k, Value: v})
	}
	return hs
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
