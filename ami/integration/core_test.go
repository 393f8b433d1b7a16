package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

func TestUserEvent(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	// The daemon's user sends it but does not receive UserEvents (manager.conf event filters,
	// eventfilter_test.go): watch with the test user.
	sub := newClient(t, clientOpts{test: true}).Subscribe(1000)
	name := uniq("PDTest")
	if err := c.UserEvent(ctx, name, ami.Header{Key: "Data", Value: tricky}, ami.Header{Key: "Data", Value: "second"},
		ami.Header{Key: "Other", Value: ""}); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, "UserEvent "+name, func(m *ami.Message) bool {
		return m.Event() == "UserEvent" && m.Get("UserEvent") == name
	})
	if got := ev.Values("Data"); len(got) != 2 || got[0] != tricky || got[1] != "second" {
		t.Errorf("UserEvent Data headers %q", got)
	}
	if _, ok := ev.Lookup("Other"); !ok {
		t.Errorf("empty header lost: %s", ev)
	}
}

func TestCoreStatusAndPing(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := c.CoreStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start, err := cs.Startup(time.UTC)
	if err != nil {
		t.Fatalf("Startup: %v (%+v)", err, cs)
	}
	if _, err := cs.Reload(time.UTC); err != nil {
		t.Errorf("Reload: %v", err)
	}
	if cs.CurrentCalls < 0 || start.Year() < 2020 {
		t.Errorf("CoreStatus %+v", cs)
	}
}

func TestCommand(t *testing.T) {
	tc := newClient(t, clientOpts{test: true})
	ctx := testCtx(t)
	out, err := tc.Command(ctx, "core show version")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 || !strings.HasPrefix(out[0], "Asterisk 22.") {
		t.Errorf("core show version = %q", out)
	}
	out, err = tc.Command(ctx, "queue show sales")
	if err != nil || len(out) < 3 || !strings.HasPrefix(out[0], "sales has") {
		t.Errorf("queue show sales = %q, %v", out, err)
	}
	_, err = tc.Command(ctx, "bogus"+uniqDigits(3))
	if msg, _ := ami.ResponseMessage(err); msg != "Command output follows" || !strings.Contains(err.Error(), "No such command") {
		t.Errorf("unknown command: %v", err)
	}

	// The daemon's user has no write=command.
	c := newClient(t, clientOpts{})
	_, err = c.Command(ctx, "core show version")
	if !errors.Is(err, ami.ErrPermissionDenied) {
		t.Errorf("Command as %s: %v, want ErrPermissionDenied", env.AMIUser, err)
	}
}
