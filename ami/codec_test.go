package ami_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/presenced/presenced/ami"
)

// step is one expected ReadMessage result.
type step struct {
	headers  []ami.Header // a message, or
	problem  string       // a *ProtocolError of this kind (with actionID), or
	actionID string
	err      error // a fatal error (errors.Is)
}

func msg(kv ...string) step {
	return step{headers: ami.NewMessage(kv...).Headers}
}

func TestReadMessage(t *testing.T) {
	long := strings.Repeat("x", ami.DefaultMaxLineLength+1)
	tests := []struct {
		name  string
		in    string
		steps []step
	}{
		{"response", "Response: Success\r\nActionID: 1\r\nMessage: Pong\r\n\r\n",
			[]step{msg("Response", "Success", "ActionID", "1", "Message", "Pong"), {err: io.EOF}}},
		{"repeated headers keep order", "Response: Success\r\nMessage: Presence State\r\nState: away\r\nMessage: Back at 2pm\r\n\r\n",
			[]step{msg("Response", "Success", "Message", "Presence State", "State", "away", "Message", "Back at 2pm"), {err: io.EOF}}},
		{"colon, percent and comma in value", "Event: X\r\nVal: 50%d: a,b:c\r\n\r\n",
			[]step{msg("Event", "X", "Val", "50%d: a,b:c"), {err: io.EOF}}},
		{"no blank after colon", "Event: X\r\nKey:value\r\n\r\n",
			[]step{msg("Event", "X", "Key", "value"), {err: io.EOF}}},
		{"extra leading blanks kept (CLI output)", "Response: Success\r\nOutput:   indented\r\n\r\n",
			[]step{msg("Response", "Success", "Output", "  indented"), {err: io.EOF}}},
		{"empty value", "Response: Success\r\nValue: \r\nOther:\r\n\r\n",
			[]step{msg("Response", "Success", "Value", "", "Other", ""), {err: io.EOF}}},
		{"bare LF line endings", "Event: A\nK: v\n\nEvent: B\n\n",
			[]step{msg("Event", "A", "K", "v"), msg("Event", "B"), {err: io.EOF}}},
		{"blank lines between messages ignored", "\r\n\r\nEvent: A\r\n\r\n\r\nEvent: B\r\n\r\n",
			[]step{msg("Event", "A"), msg("Event", "B"), {err: io.EOF}}},
		{"garbage line between messages skipped", "Event: A\r\n\r\nhello world\r\nEvent: B\r\n\r\n",
			[]step{msg("Event", "A"), {problem: ami.ProblemGarbage}, msg("Event", "B"), {err: io.EOF}}},
		{"line without colon inside message skips it", "Response: Success\r\nActionID: 7\r\nbroken line\r\nMore: x\r\n\r\nEvent: B\r\n\r\n",
			[]step{{problem: ami.ProblemMalformed, actionID: "7"}, msg("Event", "B"), {err: io.EOF}}},
		{"ActionID after the bad line is still reported", "Response: Success\r\n: empty key\r\nActionID: 8\r\n\r\n",
			[]step{{problem: ami.ProblemMalformed, actionID: "8"}, {err: io.EOF}}},
		{"over-long line skips its message", "Response: Success\r\nActionID: 9\r\nBig: " + long + "\r\nX: y\r\n\r\nEvent: B\r\n\r\n",
			[]step{{problem: ami.ProblemLineTooLong, actionID: "9"}, msg("Event", "B"), {err: io.EOF}}},
		{"over-long line between messages", long + "\r\n\r\nEvent: B\r\n\r\n",
			[]step{{problem: ami.ProblemLineTooLong}, msg("Event", "B"), {err: io.EOF}}},
		{"cut inside a message", "Response: Success\r\nActionID: 1\r\n",
			[]step{{err: io.ErrUnexpectedEOF}}},
		{"cut inside a line", "Response: Succ",
			[]step{{err: io.ErrUnexpectedEOF}}},
		{"clean EOF", "", []step{{err: io.EOF}}},
		{"CR inside a value is data", "Event: A\r\nK: a\rb\r\n\r\n",
			[]step{msg("Event", "A", "K", "a\rb"), {err: io.EOF}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ami.NewReader(strings.NewReader(tt.in))
			for i, want := range tt.steps {
				m, err := r.ReadMessage()
				switch {
				case want.err != nil:
					if !errors.Is(err, want.err) {
						t.Fatalf("step %d: got (%v, %v), want error %v", i, m, err, want.err)
					}
				case want.problem != "":
					var pe *ami.ProtocolError
					if !errors.As(err, &pe) || pe.Kind != want.problem || pe.ActionID != want.actionID {
						t.Fatalf("step %d: got (%v, %#v), want problem %s with ActionID %q", i, m, err, want.problem, want.actionID)
					}
				default:
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if !reflect.DeepEqual(m.Headers, want.headers) {
						t.Fatalf("step %d: got %q, want %q", i, m.Headers, want.headers)
					}
				}
			}
		})
	}
}

func TestReadMessageLimits(t *testing.T) {
	r := ami.NewReader(strings.NewReader("Event: A\r\nB: 1\r\nC: 2\r\n\r\nEvent: ok\r\n\r\n"))
	r.MaxHeaders = 2
	_, err := r.ReadMessage()
	var pe *ami.ProtocolError
	if !errors.As(err, &pe) || pe.Kind != ami.ProblemTooLarge {
		t.Fatalf("got %v, want %s", err, ami.ProblemTooLarge)
	}
	m, err := r.ReadMessage()
	if err != nil || m.Event() != "ok" {
		t.Fatalf("after oversized message: %v, %v", m, err)
	}

	r = ami.NewReader(strings.NewReader("Event: A\r\nB: " + strings.Repeat("b", 100) + "\r\n\r\n"))
	r.MaxMessageSize = 50
	if _, err := r.ReadMessage(); !errors.As(err, &pe) || pe.Kind != ami.ProblemTooLarge {
		t.Fatalf("got %v, want %s", err, ami.ProblemTooLarge)
	}
}

func TestReadBanner(t *testing.T) {
	r := ami.NewReader(strings.NewReader("Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n"))
	b, err := r.ReadBanner()
	if err != nil || b != "Asterisk Call Manager/11.0.0" {
		t.Fatalf("banner %q, %v", b, err)
	}
	if m, err := r.ReadMessage(); err != nil || m.Response() != "Success" {
		t.Fatalf("after banner: %v, %v", m, err)
	}
}

func TestMarshalText(t *testing.T) {
	tests := []struct {
		name    string
		m       *ami.Message
		want    string
		wantErr bool
	}{
		{"ok", ami.NewMessage("Action", "DBPut", "Val", "50%: a,b"), "Action: DBPut\r\nVal: 50%: a,b\r\n\r\n", false},
		{"repeated", ami.NewMessage("Action", "Originate", "Variable", "a=1", "Variable", "b=2"),
			"Action: Originate\r\nVariable: a=1\r\nVariable: b=2\r\n\r\n", false},
		{"empty value", ami.NewMessage("Action", "Setvar", "Value", ""), "Action: Setvar\r\nValue: \r\n\r\n", false},
		{"CRLF in value", ami.NewMessage("Action", "DBPut", "Val", "x\r\nAction: Logoff"), "", true},
		{"LF in value", ami.NewMessage("Action", "DBPut", "Val", "x\ny"), "", true},
		{"CR in value", ami.NewMessage("Action", "DBPut", "Val", "x\ry"), "", true},
		{"NUL in value", ami.NewMessage("Action", "DBPut", "Val", "x\x00y"), "", true},
		{"colon in key", ami.NewMessage("Action", "X", "A:B", "v"), "", true},
		{"empty key", ami.NewMessage("Action", "X", "", "v"), "", true},
		{"blank in key edge", ami.NewMessage("Action", "X", " K", "v"), "", true},
		{"empty message", &ami.Message{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.MarshalText()
			if tt.wantErr {
				if !errors.Is(err, ami.ErrInvalidHeader) {
					t.Fatalf("got %q, %v; want ErrInvalidHeader", b, err)
				}
				return
			}
			if err != nil || string(b) != tt.want {
				t.Fatalf("got %q, %v; want %q", b, err, tt.want)
			}
			back, err := ami.NewReader(strings.NewReader(string(b))).ReadMessage()
			if err != nil || !reflect.DeepEqual(back.Headers, tt.m.Headers) {
				t.Fatalf("round trip: %q, %v", back, err)
			}
		})
	}
}

func TestMessageAccessors(t *testing.T) {
	m := ami.NewMessage("Response", "Success", "ActionID", "a-1", "Output", "one", "output", "two")
	if got := m.Get("actionid"); got != "a-1" {
		t.Errorf("Get is not case-insensitive: %q", got)
	}
	if got := m.Values("OUTPUT"); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Errorf("Values = %q", got)
	}
	m.Add("Output", "three")
	m.Set("Output", "only")
	if got := m.Values("Output"); !reflect.DeepEqual(got, []string{"only"}) {
		t.Errorf("after Set: %q", got)
	}
	m.Set("New", "x")
	if m.Get("New") != "x" {
		t.Errorf("Set did not append")
	}
	m.Del("new")
	if _, ok := m.Lookup("New"); ok {
		t.Errorf("Del did not delete")
	}
	if m.Event() != "" || m.Response() != "Success" || m.ActionID() != "a-1" || m.IsEvent() || !m.IsResponse() {
		t.Errorf("accessors wrong for %q", m)
	}
	c := m.Clone()
	c.Set("Response", "Error")
	if m.Response() != "Success" {
		t.Errorf("Clone shares headers")
	}
	if s := ami.NewMessage("Action", "Login", "Secret", "hunter2").String(); strings.Contains(s, "hunter2") {
		t.Errorf("String leaks the secret: %q", s)
	}
	if ami.NewMessage("Event", "Resync", ami.HeaderSynthetic, "true").Synthetic() {
		t.Errorf("a header alone must not make a message synthetic")
	}
	var nilMsg *ami.Message
	if nilMsg.Get("x") != "" || nilMsg.Values("x") != nil || nilMsg.Synthetic() {
		t.Errorf("nil message accessors")
	}
}

// FuzzReadMessage checks that no input makes the reader panic or loop, that
// what it returns is sane, and that every message it returns survives
// MarshalText and a second read unchanged.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{
		"Response: Success\r\nActionID: 1\r\nPing: Pong\r\n\r\n",
		"Event: QueueMember\r\nQueue: sales\r\nName: Alice\r\n\r\n",
		"garbage\r\nEvent: A\r\n\r\n",
		"Response: Success\r\nbroken\r\nActionID: 3\r\n\r\n",
		"Event: X\nK:v\n\n",
		":\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := ami.NewReader(strings.NewReader(string(data)))
		r.MaxLineLength = 256
		r.MaxMessageSize = 1024
		r.MaxHeaders = 16
		for i := 0; i <= len(data)+1; i++ {
			m, err := r.ReadMessage()
			var pe *ami.ProtocolError
			if errors.As(err, &pe) {
				if pe.Kind == "" {
					t.Fatalf("protocol error without kind")
				}
				continue
			}
			if err != nil {
				return
			}
			if len(m.Headers) == 0 || len(m.Headers) > 16 {
				t.Fatalf("message with %d headers", len(m.Headers))
			}
			for _, h := range m.Headers {
				if h.Key == "" || strings.ContainsAny(h.Key, ":\n") || strings.Contains(h.Value, "\n") {
					t.Fatalf("bad header %q", h)
				}
			}
			b, err := m.MarshalText()
			if err != nil {
				// Only values with CR or NUL (data, but not sendable) may fail.
				if !errors.Is(err, ami.ErrInvalidHeader) {
					t.Fatalf("MarshalText: %v", err)
				}
				continue
			}
			back, err := ami.NewReader(strings.NewReader(string(b))).ReadMessage()
			if err != nil || !reflect.DeepEqual(back.Headers, m.Headers) {
				t.Fatalf("round trip of %q: got %q, %v", b, back, err)
			}
		}
		t.Fatalf("reader did not stop after %d messages", len(data)+1)
	})
}
