package ari

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	xslog "golang.org/x/exp/slog"
)

func TestLibraryLoggerForwardsToLogSlog(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := LibraryLogger(base).With("client", "ari").WithGroup("ws")

	l.Debug("hidden")
	if !l.Enabled(context.Background(), xslog.LevelInfo) || l.Enabled(context.Background(), xslog.LevelDebug) {
		t.Errorf("Enabled does not follow the log/slog handler's level")
	}
	l.Error("read failure on websocket",
		"error", "EOF",
		"n", 3,
		"took", 1500*time.Millisecond,
		xslog.Group("peer", "host", "127.0.0.1", "port", 8088),
	)

	var got map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &got); err != nil {
		t.Fatalf("want exactly one JSON line, got %q: %v", buf.String(), err)
	}
	ws, _ := got["ws"].(map[string]any)
	peer, _ := ws["peer"].(map[string]any)
	switch {
	case got["level"] != "ERROR", got["msg"] != "read failure on websocket", got["client"] != "ari":
		t.Errorf("record = %v", got)
	case ws["error"] != "EOF", ws["n"] != float64(3), ws["took"] != float64(1500*time.Millisecond):
		t.Errorf("attributes = %v", ws)
	case peer["host"] != "127.0.0.1", peer["port"] != float64(8088):
		t.Errorf("group = %v", peer)
	}

	LibraryLogger(nil).Info("discarded") // must not panic
}
