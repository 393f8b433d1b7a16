package amiconcern

import (
	"testing"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
)

func TestCheckNamesTheField(t *testing.T) {
	client, err := ami.New(ami.Config{Addr: "127.0.0.1:1", Username: "u", Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"ok", Options{AMI: client}, ""},
		{"no AMI", Options{}, "blf: Options.AMI is required"},
		{"negative MaxInFlight", Options{AMI: client, MaxInFlight: -1}, "blf: Options.MaxInFlight must not be negative, got -1"},
		{"negative SmallBatch", Options{AMI: client, SmallBatch: -2}, "blf: Options.SmallBatch must not be negative, got -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Spec{Name: "blf", Kinds: []presence.OpKind{presence.OpPresence}}, tt.o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "":
				if b.Name() != "blf" || b.SmallBatch != DefaultSmallBatch || cap(b.sem) != DefaultMaxInFlight || b.Reader != client {
					t.Errorf("defaults not filled in: %+v", b)
				}
			case err == nil || err.Error() != tt.want:
				t.Errorf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDescribeDoesNotPanic(t *testing.T) {
	b := &Base{spec: Spec{Kinds: []presence.OpKind{presence.OpPresence, presence.OpDBPut}}}
	tests := []struct {
		op   presence.Op
		want string
	}{
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:1001"}, "presence CustomPresence:1001"},
		{presence.Op{Kind: presence.OpPresence, Key: "CustomPresence:1001", Presence: &presence.PresenceValue{State: "away", Message: "m"}},
			`presence CustomPresence:1001 away "m"`},
		{presence.Op{Kind: presence.OpDBPut, Key: "A/b", Value: "v"}, `db_put A/b="v"`},
		{presence.Op{Kind: presence.OpQueueAdd, Key: "x"}, "queue_add x"}, // not its kind
	}
	for _, tt := range tests {
		if got := b.describe(tt.op); got != tt.want {
			t.Errorf("describe(%+v) = %q, want %q", tt.op, got, tt.want)
		}
	}
}
