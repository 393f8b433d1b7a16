package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen is a service manager's end: a unix datagram socket at name.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestNotifyReachesTheSocket: notifications arrive as one datagram each, on a path socket and
// on an abstract one, as systemd receives them.
func TestNotifyReachesTheSocket(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", "@presenced-sdnotify-test-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := listen(t, tc.socket)
			n, err := FromEnv(env(map[string]string{"NOTIFY_SOCKET": tc.socket}))
			if err != nil || n == nil {
				t.Fatalf("FromEnv: %v, %v", n, err)
			}
			if err := n.Notify("READY=1", "STATUS=ready: leader"); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, srv); got != "READY=1\nSTATUS=ready: leader" {
				t.Fatalf("received %q", got)
			}
			if err := n.Notify("WATCHDOG=1"); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, srv); got != "WATCHDOG=1" {
				t.Fatalf("received %q", got)
			}
		})
	}
}

func TestNotifyErrors(t *testing.T) {
	var none *Notifier
	if err := none.Notify("READY=1"); err != nil {
		t.Fatalf("a nil Notifier: %v", err)
	}
	if n, err := FromEnv(env(nil)); n != nil || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", n, err)
	}
	if _, err := FromEnv(env(map[string]string{"NOTIFY_SOCKET": "relative.sock"})); err == nil || !strings.Contains(err.Error(), "relative.sock") {
		t.Fatalf("a relative NOTIFY_SOCKET: %v", err)
	}
	gone := filepath.Join(t.TempDir(), "gone.sock")
	n, _ := FromEnv(env(map[string]string{"NOTIFY_SOCKET": gone}))
	if err := n.Notify("READY=1"); err == nil || !strings.Contains(err.Error(), gone) {
		t.Fatalf("no socket listening: %v", err)
	}
	srv := listen(t, filepath.Join(t.TempDir(), "n.sock"))
	n, _ = FromEnv(env(map[string]string{"NOTIFY_SOCKET": srv.LocalAddr().String()}))
	if err := n.Notify("READY"); err == nil {
		t.Fatal("a line without = was sent")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := os.Getpid()
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{env: nil, want: 0},
		{env: map[string]string{"WATCHDOG_USEC": "30000000"}, want: 30 * time.Second},
		{env: map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, want: 0},
		{env: map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": strconv.Itoa(pid)}, want: 2 * time.Second},
		{env: map[string]string{"WATCHDOG_USEC": "soon"}, wantErr: true},
		{env: map[string]string{"WATCHDOG_USEC": "0"}, wantErr: true},
		{env: map[string]string{"WATCHDOG_USEC": "1", "WATCHDOG_PID": "me"}, wantErr: true},
	} {
		got, err := WatchdogInterval(env(tc.env), pid)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%v: %v, %v; want %v, error %v", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}
