package main

import (
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/internal/sdnotify"
)

// TestSystemdNotify: under Type=notify presenced tells systemd READY=1 only once /readyz would
// answer 200 (not while Asterisk is unreachable: the status says why), sends WATCHDOG=1 while
// its HTTP listener answers, brackets a reload with RELOADING=1 (with MONOTONIC_USEC) and
// READY=1, and STOPPING=1 when it shuts down; over a real unix datagram socket, as systemd's.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(within time.Duration, want string) []string {
		t.Helper()
		var seen []string
		deadline := time.After(within)
		for {
			select {
			case m := <-msgs:
				seen = append(seen, m)
				if strings.Contains(m, want) {
					return seen
				}
			case <-deadline:
				t.Fatalf("no %s within %v; received %q", want, within, seen)
			}
		}
	}

	amiProxy, err := lab.NewProxy(env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer amiProxy.Close()
	amiProxy.SetUp(false)
	cfg := labConfig(t, amiProxy.Addr(), env.ARIURL)
	n, err := sdnotify.FromEnv(func(string) string { return sock })
	if err != nil {
		t.Fatal(err)
	}
	cfg.service = serviceManager{notify: n, watchdog: time.Second}
	cfg.API.AdminToken = secAdminToken
	d := startDaemon(t, cfg)

	seen := next(5*time.Second, "STATUS=not ready: ami: not connected")
	for _, m := range seen {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY=1 while AMI is unreachable: %q", seen)
		}
	}
	if v := d.metric(t, "presenced_ready"); v != 0 {
		t.Errorf("presenced_ready = %v while AMI is unreachable, want 0", v)
	}
	next(3*time.Second, "WATCHDOG=1")
	for _, m := range next(time.Second, "WATCHDOG=1") {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY=1 while AMI is unreachable: %q", m)
		}
	}
	amiProxy.SetUp(true)
	seen = next(15*time.Second, "READY=1")
	ready := seen[len(seen)-1]
	if !strings.Contains(ready, "STATUS=ready: ") {
		t.Errorf("READY=1 without a status: %q", ready)
	}
	if code, rd := d.readiness(t); code != 200 || !rd.Ready {
		t.Errorf("told systemd READY=1, but /readyz answers %d %+v", code, rd)
	}
	if v := d.metric(t, "presenced_ready"); v != 1 {
		t.Errorf("presenced_ready = %v, want 1", v)
	}
	next(3*time.Second, "WATCHDOG=1")

	// The configuration of the environment is read again; until it is in force the unit is
	// "reloading", and READY=1 ends that.
	if code, ans := d.call(t, http.MethodPost, "/-/reload", secAdminToken, nil); code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %v", code, ans)
	}
	seen = next(3*time.Second, "RELOADING=1")
	reloading := seen[len(seen)-1]
	if !regexp.MustCompile(`(?m)^MONOTONIC_USEC=[1-9][0-9]*$`).MatchString(reloading) {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", reloading)
	}
	seen = next(3*time.Second, "READY=1")
	if !strings.Contains(seen[len(seen)-1], "STATUS=ready: ") {
		t.Errorf("READY=1 after the reload without the status line: %q", seen[len(seen)-1])
	}
	d.stop(t)
	next(time.Second, "STOPPING=1")
}

// TestHealthcheckFlag: presenced -healthcheck, with nothing but http.listen configured (no
// secrets: a container's HEALTHCHECK has only the image's environment), exits 0 while the
// presenced listening there answers /healthz and 1 once it is gone.
func TestHealthcheckFlag(t *testing.T) {
	d := startDaemon(t, labConfig(t, env.AMIAddr, env.ARIURL))
	listen := strings.TrimPrefix(d.base, "http://")
	_, port, _ := net.SplitHostPort(listen)
	for _, addr := range []string{listen, "0.0.0.0:" + port} {
		var out, errb strings.Builder
		if code := realMain([]string{"-healthcheck"}, []string{"PRESENCED_HTTP_LISTEN=" + addr}, &out, &errb); code != 0 {
			t.Fatalf("-healthcheck with http.listen %s: exit %d, %s%s", addr, code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), "healthy") {
			t.Errorf("-healthcheck said %q", out.String())
		}
	}
	d.stop(t)
	var out, errb strings.Builder
	if code := realMain([]string{"-healthcheck"}, []string{"PRESENCED_HTTP_LISTEN=" + listen}, &out, &errb); code != 1 {
		t.Fatalf("-healthcheck with presenced stopped: exit %d, %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "connection refused") {
		t.Errorf("-healthcheck with presenced stopped said %q", errb.String())
	}
}
