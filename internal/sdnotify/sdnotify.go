// Package sdnotify tells the service manager about the daemon's state, as sd_notify(3) does:
// datagrams of newline-separated VAR=value lines on the unix socket named by $NOTIFY_SOCKET
// (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1, RELOADING=1). systemd sets the variable for a
// service of Type=notify; without it there is nobody to tell and a Notifier is nil.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager. A nil *Notifier sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for the socket named by NOTIFY_SOCKET, as getenv reads it; nil
// when it is unset. A name starting with '@' is a socket in the abstract namespace.
func FromEnv(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name)", name)
	}
	// Go's net package maps a leading '@' to the abstract namespace's NUL byte.
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Notify sends one notification: lines such as "READY=1" or "STATUS=waiting for Asterisk".
// It does nothing for a nil Notifier.
func (n *Notifier) Notify(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if !strings.Contains(l, "=") {
			return fmt.Errorf("sdnotify: %q is not VAR=value", l)
		}
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr.Name, err)
	}
	return nil
}

// WatchdogInterval is the service's watchdog timeout (WatchdogSec=, as $WATCHDOG_USEC) when
// the watchdog is on for this process ($WATCHDOG_PID unset or pid); zero when it is off.
// Send WATCHDOG=1 at least every half of it.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sdnotify: WATCHDOG_PID=%q is not a number", p)
		}
		if n != pid {
			return 0, nil // meant for another process
		}
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("sdnotify: WATCHDOG_USEC=" + strconv.Quote(usec) + " is not a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, nil
}
