package main

import (
	"strings"
	"testing"
)

// TestChangesSessionCarriesAstdbAndLamps: with the default asterisk.ami.write_sessions (4),
// the astdb, lamp and presence changes of switches go over the "changes" session and no
// other, and the queue changes over the main and write sessions, never over "changes": a
// cheap change never waits in line behind a queue change (docs/asterisk.md §1.1).
func TestChangesSessionCarriesAstdbAndLamps(t *testing.T) {
	d, cfg := startProfileDaemon(t)
	if cfg.Asterisk.AMI.WriteSessions < 2 {
		t.Fatalf("the test needs write_sessions of 2 or more, the configuration has %d", cfg.Asterisk.AMI.WriteSessions)
	}
	d.switchTo(t, "alice", "meeting", "")
	d.switchTo(t, "alice", "available", "")
	_, body := d.get(t, "/metrics")
	sent := map[string]map[string]float64{} // connection → action → actions answered
	for _, s := range parseMetrics(t, body) {
		if s.name != "presenced_ami_actions_total" || s.label["result"] == "gated" {
			continue
		}
		conn := s.label["connection"]
		if sent[conn] == nil {
			sent[conn] = map[string]float64{}
		}
		sent[conn][s.label["action"]] += s.value
	}
	for _, action := range []string{"DBPut", "Setvar"} {
		if sent["changes"][action] == 0 {
			t.Errorf("no %s over the changes session: %v", action, sent)
		}
	}
	var queueChanges float64
	for conn, actions := range sent {
		for action, n := range actions {
			if n == 0 {
				continue // a counter made at start
			}
			isQueue := strings.HasPrefix(action, "Queue") && action != "QueueStatus" && action != "QueueSummary"
			isChange := action == "DBPut" || action == "DBDel" || action == "DBDelTree" || action == "Setvar"
			switch {
			case conn == "changes" && isQueue:
				t.Errorf("%v %s over the changes session", n, action)
			case conn != "changes" && isChange:
				t.Errorf("%v %s over the %s session, not the changes session", n, action, conn)
			case conn != "changes" && isQueue:
				queueChanges += n
			}
		}
	}
	if queueChanges == 0 {
		t.Errorf("no queue change over the main or write sessions: %v", sent)
	}
}
