package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presenced/presenced/internal/sdnotify"
)

// serviceManager is what systemd told presenced through its environment: where to send
// notifications (Type=notify) and how often the watchdog wants to hear from it.
type serviceManager struct {
	notify   *sdnotify.Notifier // nil: not run by systemd as Type=notify
	watchdog time.Duration      // zero: no watchdog
}

// serviceManagerFrom reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
func serviceManagerFrom(getenv func(string) string, pid int) (serviceManager, error) {
	n, err := sdnotify.FromEnv(getenv)
	if err != nil {
		return serviceManager{}, err
	}
	w, err := sdnotify.WatchdogInterval(getenv, pid)
	if err != nil {
		return serviceManager{}, err
	}
	return serviceManager{notify: n, watchdog: w}, nil
}

// readinessPoll is how often the daemon looks whether it became ready, until it is, to tell
// the service manager; statusPoll how often afterwards it updates the status line.
const (
	readinessPoll = 500 * time.Millisecond
	statusPoll    = 10 * time.Second
)

// superviseService tells the service manager, until ctx ends: READY=1 once /readyz would
// answer 200 (systemctl start returns then; units ordered after presenced start then), a
// STATUS= line saying what is not ready or the instance's role, and WATCHDOG=1 every half
// watchdog interval while the HTTP listener at httpAddr answers /healthz (so a hung process is
// restarted). It returns when ctx ends.
func (d *daemon) superviseService(ctx context.Context, sm serviceManager, healthURL string) {
	if sm.notify == nil {
		return
	}
	var watchdog <-chan time.Time
	if sm.watchdog > 0 {
		t := time.NewTicker(sm.watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}
	client := selfClient(d.cfg, max(sm.watchdog/4, time.Second))
	ready, status := false, ""
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog:
			if err := d.alive(ctx, client, healthURL); err != nil {
				d.log.Warn("watchdog: not telling systemd that presenced is alive", "err", err)
				continue
			}
			d.sendNotify(sm, "WATCHDOG=1")
		case <-poll.C:
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			rd := d.readiness(rctx)
			cancel()
			s := statusLine(rd)
			switch {
			case rd.Ready && !ready:
				ready = true
				d.sendNotify(sm, "READY=1", "STATUS="+s)
				d.toldReady.Store(true)
				d.log.Info("told systemd: ready", "status", s)
			case s != status:
				d.sendNotify(sm, "STATUS="+s)
			}
			status = s
			if ready {
				poll.Reset(statusPoll)
			} else {
				poll.Reset(readinessPoll)
			}
		}
	}
}

// notifyReload tells the service manager that a reload begins (RELOADING=1 with the
// CLOCK_MONOTONIC time systemd's Type=notify-reload requires) and returns the function that
// tells it the reload ended (READY=1, whatever its outcome: the configuration in force serves
// on). Nothing is sent before the start was announced ready.
func (d *daemon) notifyReload() (done func()) {
	sm := d.cfg.service
	if sm.notify == nil || !d.toldReady.Load() {
		return func() {}
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		d.log.Warn("cannot read CLOCK_MONOTONIC for systemd's RELOADING=1", "err", err)
		return func() {}
	}
	d.sendNotify(sm, "RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10), "STATUS=reloading the configuration")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d.sendNotify(sm, "READY=1", "STATUS="+statusLine(d.readiness(ctx)))
	}
}

func (d *daemon) sendNotify(sm serviceManager, lines ...string) {
	if err := sm.notify.Notify(lines...); err != nil {
		d.log.Warn("cannot notify systemd", "err", err)
	}
}

// alive asks the daemon's own HTTP listener for /healthz.
func (d *daemon) alive(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// statusLine is the readiness in one line, for systemctl status.
func statusLine(rd readiness) string {
	if rd.Ready {
		return "ready: " + rd.Role + ", leader " + rd.Leader
	}
	var why []string
	for _, part := range []string{"ami", "ari", "store"} {
		if c, ok := rd.Checks[part]; ok && c != "ok" {
			why = append(why, part+": "+c)
		}
	}
	return "not ready: " + strings.Join(why, "; ")
}

// loopback is the address to reach a listener at addr from this host: an unspecified host
// (0.0.0.0, ::) is reached at the loopback address.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// healthcheckTimeout bounds -healthcheck's request.
const healthcheckTimeout = 3 * time.Second

// healthcheck asks the presenced listening on cfg.HTTP.Listen for /healthz, from this host, and
// returns the exit code: 0 when it answers 200, 1 otherwise (Docker's HEALTHCHECK convention).
func healthcheck(cfg Config, stdout, stderr io.Writer) int {
	url := selfURL(cfg, cfg.HTTP.Listen, "/healthz")
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -healthcheck: %v\n", err)
		return 1
	}
	resp, err := selfClient(cfg, healthcheckTimeout).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "presenced: -healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "presenced: -healthcheck: GET %s: %s\n", url, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "presenced: healthy (%s)\n", url)
	return 0
}

// selfURL is the URL of path on the presenced listening at addr (http.listen), from this host:
// https with http.tls.
func selfURL(cfg Config, addr, path string) string {
	scheme := "http"
	if cfg.HTTP.TLS.enabled() {
		scheme = "https"
	}
	return scheme + "://" + loopback(addr) + path
}

// selfClient is an HTTP client for selfURL. With TLS it does not verify the certificate: it
// talks to its own listener on this host, whose certificate names the host's public name, not
// the loopback address; what it asks (/healthz) is public.
func selfClient(cfg Config, timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if cfg.HTTP.TLS.enabled() {
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	return c
}
