package lab

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

var env *Env

func TestMain(m *testing.M) {
	os.Exit(Main(m, Options{Asterisk: true, Redis: true}, func(e *Env) { env = e }))
}

func TestAsteriskIsVersion22AndBooted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := env.CLI(ctx, "core show version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Asterisk 22.") {
		t.Fatalf("core show version = %q, want Asterisk 22.x", out)
	}
	log, err := env.AsteriskLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "WARNING") || strings.Contains(line, "ERROR") {
			t.Errorf("lab Asterisk logged: %s", line)
		}
	}
}

// TestAMIBannerAndLogin speaks raw AMI: the lab's least-privilege user logs in and, Asterisk
// being booted, gets FullyBooted right after the login response.
func TestAMIBannerAndLogin(t *testing.T) {
	c, err := net.DialTimeout("tcp", env.AMIAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write([]byte("Action: Login\r\nUsername: " + env.AMIUser + "\r\nSecret: " + env.AMISecret + "\r\nActionID: l1\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), "Event: FullyBooted") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v; got so far %q", err, got.String())
		}
		got.Write(buf[:n])
	}
	if !strings.HasPrefix(got.String(), "Asterisk Call Manager/") || !strings.Contains(got.String(), "Authentication accepted") {
		t.Fatalf("unexpected AMI exchange: %q", got.String())
	}
}

func TestRedisAnswersPing(t *testing.T) {
	addr := strings.TrimSuffix(strings.TrimPrefix(env.RedisURL, "redis://"), "/0")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("PING = %q, %v", buf[:n], err)
	}
}

// TestRestartRedisLosesKeysAndConnections: after RestartRedis the data is gone, open
// connections are cut, and a new connection on the same address is served.
func TestRestartRedisLosesKeysAndConnections(t *testing.T) {
	addr := strings.TrimSuffix(strings.TrimPrefix(env.RedisURL, "redis://"), "/0")
	roundTrip := func(c net.Conn, cmd string) (string, error) {
		if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
			return "", err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	old := dial()
	if got, err := roundTrip(old, "SET TestRestartRedis v"); err != nil || got != "+OK\r\n" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.RestartRedis(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(old, "PING"); err == nil {
		t.Errorf("the connection from before the restart still answers: %q", got)
	}
	if got, err := roundTrip(dial(), "EXISTS TestRestartRedis"); err != nil || got != ":0\r\n" {
		t.Fatalf("EXISTS after the restart = %q, %v; want :0", got, err)
	}
}

func TestProxyCutsAndRestores(t *testing.T) {
	p, err := NewProxy(env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	readBanner := func() error {
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(buf[:n]), "Asterisk Call Manager/") {
			t.Fatalf("banner through proxy = %q", buf[:n])
		}
		return nil
	}
	if err := readBanner(); err != nil {
		t.Fatalf("proxy up: %v", err)
	}
	p.SetUp(false)
	if err := readBanner(); err == nil {
		t.Fatal("proxy down: still got a banner")
	}
	p.SetUp(true)
	if err := readBanner(); err != nil {
		t.Fatalf("proxy up again: %v", err)
	}
}

// TestProxyHangsAndResumes: a hung proxy keeps the connection open and answers nothing; once
// it resumes, what was held back is delivered.
func TestProxyHangsAndResumes(t *testing.T) {
	p, err := NewProxy(strings.TrimSuffix(strings.TrimPrefix(env.RedisURL, "redis://"), "/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ping := func(wait time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(wait))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	p.SetHung(true)
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if got, err := ping(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("hung proxy answered %q, %v; want a read timeout", got, err)
	}
	p.SetHung(false)
	if got, err := ping(5 * time.Second); err != nil || got != "+PONG\r\n" {
		t.Fatalf("after resuming: %q, %v; want the held-back PONG", got, err)
	}
}

// TestFuzzing: Main starts no lab for a run of a fuzz target or a fuzz worker, and does for
// any other run.
func TestFuzzing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{"tests", []string{"-test.run", "TestX"}, false},
		{"no flags", nil, false},
		{"fuzz target", []string{"-test.run", "^$", "-test.fuzz", "^FuzzExpand$"}, true},
		{"fuzz worker", []string{"-test.fuzzworker", "-test.fuzz", "^FuzzExpand$"}, true},
		{"worker alone", []string{"-test.fuzzworker"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.String("test.run", "", "")
			fs.String("test.fuzz", "", "")
			fs.Bool("test.fuzzworker", false, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := fuzzing(fs); got != tc.want {
				t.Errorf("fuzzing(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
	if fuzzing(flag.NewFlagSet("bare", flag.ContinueOnError)) {
		t.Error("fuzzing of a flag set without the test flags = true")
	}
}
