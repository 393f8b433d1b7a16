package main

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkSwitchLeaderVsStandby: two daemons on the lab's Redis and Asterisk; the same user
// switches between two profiles through the leader's API and through the standby's (which
// relays the switch to the leader over Redis and answers with its outcomes), taking turns.
// Latency is the HTTP call, from request to the answer with the outcomes; reported p50 and p99
// of each and the ratio standby ÷ leader.
//
//	go test -run '^$' -bench SwitchLeaderVsStandby -benchtime 200x ./cmd/presenced
func BenchmarkSwitchLeaderVsStandby(b *testing.B) {
	cfgA := profileConfig(b, fixture(b, "config/end-to-end.yaml", nil))
	cfgB := cfgA
	cfgA.InstanceID, cfgB.InstanceID = "bench-a", "bench-b"
	leader := startDaemonAt(b, cfgA, slogInfo)
	leader.waitRole(b, "leader", 20*time.Second)
	standby := startDaemonAt(b, cfgB, slogInfo)
	standby.waitRole(b, "standby", 20*time.Second)
	sw := func(d *daemonUnderTest, profile string) time.Duration {
		start := time.Now()
		code, res := d.call(b, http.MethodPut, "/api/v1/users/alice/profile", testToken("admin"), map[string]string{"profile": profile})
		took := time.Since(start)
		if code != http.StatusOK || res["in_sync"] != true {
			b.Fatalf("switch to %s: %d %v", profile, code, res)
		}
		if outs, _ := res["outcomes"].([]any); len(outs) == 0 {
			b.Fatalf("switch to %s answered without outcomes: %v", profile, res)
		}
		return took
	}
	sw(leader, "available")
	sw(standby, "lunch")
	var viaLeader, viaStandby []time.Duration
	i := 0
	for b.Loop() {
		p := []string{"available", "lunch"}[i%2]
		if i%4 < 2 {
			viaLeader = append(viaLeader, sw(leader, p))
		} else {
			viaStandby = append(viaStandby, sw(standby, p))
		}
		i++
	}
	b.StopTimer()
	if len(viaLeader) == 0 || len(viaStandby) == 0 {
		return
	}
	ms := func(ds []time.Duration, p float64) float64 { return float64(percentile(ds, p).Microseconds()) / 1000 }
	b.ReportMetric(ms(viaLeader, .5), "leader-p50-ms")
	b.ReportMetric(ms(viaLeader, .99), "leader-p99-ms")
	b.ReportMetric(ms(viaStandby, .5), "standby-p50-ms")
	b.ReportMetric(ms(viaStandby, .99), "standby-p99-ms")
	b.ReportMetric(ms(viaStandby, .5)/ms(viaLeader, .5), "standby/leader-p50")
	b.ReportMetric(ms(viaStandby, .99)/ms(viaLeader, .99), "standby/leader-p99")
}
