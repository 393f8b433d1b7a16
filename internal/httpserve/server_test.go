package httpserve

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func start(t *testing.T, l Limits, h http.Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(l, ln, h, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	go s.Serve()
	t.Cleanup(func() { stopNow(s) })
	return s, ln.Addr().String()
}

// stopNow stops s at once: the listener and every connection closed.
func stopNow(s *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Stop(ctx)
}

func TestConnectionOverTheCapIsAnswered503(t *testing.T) {
	_, addr := start(t, Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxConnections: 1, MaxBodyBytes: 10},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := bufio.NewReader(first).ReadString('\n'); !strings.Contains(line, "200") {
		t.Fatalf("first connection: %q, want 200", line)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(second)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 503 ") || !strings.Contains(string(answer), "Retry-After: 1") {
		t.Fatalf("second connection over the cap of 1: %q, want 503 with Retry-After", answer)
	}
}

func TestBodyOverTheLimitIsRefusedAndStopWaitsForHandlers(t *testing.T) {
	release := make(chan struct{})
	s, addr := start(t, Limits{ReadHeaderTimeout: 5 * time.Second, MaxConnections: 8, MaxBodyBytes: 4},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
				return
			}
			<-release
		}))
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("12345"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 5-byte body over a limit of 4: %d", resp.StatusCode)
	}
	go http.Post("http://"+addr+"/", "text/plain", strings.NewReader("1234"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		n, _ := s.Wait(ctx)
		cancel()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := s.Wait(ctx); n != 0 || err != nil {
		t.Fatalf("Wait after the handler ended: %d running, %v", n, err)
	}
}
