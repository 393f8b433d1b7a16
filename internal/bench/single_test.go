package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// mixed sends actions pipelined, lists and simple ones alike, and reads until each has ended:
// a simple action with its response, a list with its Complete event (or an error response).
// It returns how many responses were errors.
func (rc *rcRaw) mixed(actions []string) (errs int, err error) {
	sent := rc.send(actions)
	for done := 0; done < len(actions); {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return errs, fmt.Errorf("raw AMI: %w", err)
		}
		switch s := string(line); {
		case strings.HasPrefix(s, "Response: "):
			done++ // a list's response is taken back at its "EventList: start"
			if !strings.HasPrefix(s, "Response: Success") {
				errs++
			}
		case s == "EventList: start\r\n":
			done--
		case s == "EventList: Complete\r\n":
			done++
		}
	}
	return errs, <-sent
}

// singleUser is the user of the single-switch benchmark: in the 10 queues bench1…bench10.
func singleUser(ext string) presence.User {
	qs := make([]presence.QueueMembership, 10)
	for i := range qs {
		qs[i] = presence.QueueMembership{Name: fmt.Sprintf("bench%d", i+1)}
	}
	return presence.User{ID: presence.UserID("single" + ext), Extension: ext,
		Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}}, Queues: qs}
}

// singleProfiles change every queue's pause (with reason), DND (astdb key, text, lamp), the
// presence state and a busy forward.
func singleProfiles() []presence.Profile {
	all := presence.QueueSelector{"all"}
	off := false
	return []presence.Profile{
		{ID: "available", Presence: "available", OnEnter: []presence.Action{
			{Kind: presence.ActionQueueLogin, Queues: all}, {Kind: presence.ActionQueueUnpause, Queues: all},
			{Kind: presence.ActionDND, On: &off}, {Kind: presence.ActionForward, Type: presence.ForwardBusy, On: &off}}},
		{ID: "dnd", Presence: "dnd", OnEnter: []presence.Action{
			{Kind: presence.ActionQueuePause, Queues: all, Reason: "Busy"}, {Kind: presence.ActionDND},
			{Kind: presence.ActionForward, Type: presence.ForwardBusy, To: "1002"}}},
	}
}

// BenchmarkSingleSwitch: one user in 10 queues switches between two profiles that change
// every queue's pause, DND, presence and a forward: the latency of Engine.Switch (Redis state
// read and written, the PBX read, the plan applied, the journal), p50 and p99. In the same run
// the thinnest client replays, for a twin user presenced does not know (extension 69998),
// exactly the AMI actions the engine sent for the same switch (recorded on its two
// connections): the reads pipelined and awaited, then the changes pipelined and awaited. The
// two take turns, one switch each; the ratios are engine ÷ raw at p50 and at p99.
func BenchmarkSingleSwitch(b *testing.B) {
	u := singleUser("69999")
	var main, reader lab.AMITap
	r := newRigWith(b, []presence.User{u}, singleProfiles(), *benchWriters, func(isReader bool, cfg *ami.Config) {
		if isReader {
			cfg.Dial = reader.Dial
		} else {
			cfg.Dial = main.Dial
		}
	})
	ctx := context.Background()
	sw := func(p string) time.Duration {
		start := time.Now()
		res, err := r.engine.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: p, Source: presence.SourceAPI})
		took := time.Since(start)
		if err != nil || !res.InSync {
			b.Fatalf("switch to %s: %v %+v", p, err, res)
		}
		return took
	}
	sw("available")
	sw("dnd")
	// What the engine sends for each switch, rewritten for the twin.
	type recorded struct{ reads, writes []string }
	actions := map[string]recorded{}
	twin := func(as []string) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = strings.ReplaceAll(a, "69999", "69998")
		}
		return out
	}
	for _, p := range []string{"available", "dnd"} {
		main.Start()
		reader.Start()
		sw(p)
		writes, reads := main.Stop(), reader.Stop()
		if *benchReader {
			actions[p] = recorded{reads: twin(reads), writes: twin(writes)}
		} else {
			actions[p] = recorded{writes: twin(writes)}
		}
	}
	raw := rcDialRaw(b)
	replay := func(p string) time.Duration {
		a := actions[p]
		start := time.Now()
		if len(a.reads) > 0 {
			if errs, err := raw.mixed(a.reads); err != nil || errs != 0 {
				b.Fatalf("raw reads for %s: %d errors, %v", p, errs, err)
			}
		}
		if errs, err := raw.mixed(a.writes); err != nil || errs != 0 {
			b.Fatalf("raw changes for %s: %d errors, %v", p, errs, err)
		}
		return time.Since(start)
	}
	// The twin starts where the user is: in the queues, paused (replaying "dnd" puts the rest).
	tw := singleUser("69998")
	var adds []string
	for _, q := range tw.Queues {
		adds = append(adds, fmt.Sprintf("Action: QueueAdd\r\nQueue: %s\r\nInterface: %s\r\nMemberName: %s\r\nStateInterface: hint:%s@hints\r\nPaused: true\r\nReason: Busy\r\n\r\n",
			q.Name, presence.DefaultNaming().Interface(&tw), tw.ID, tw.Extension))
	}
	if errs, err := raw.mixed(adds); err != nil || errs != 0 {
		b.Fatalf("raw QueueAdds for the twin: %d errors, %v", errs, err)
	}
	replay("dnd")
	var eng, thin []time.Duration
	i := 0
	for b.Loop() {
		p := []string{"available", "dnd"}[i%2]
		if i%4 < 2 {
			eng = append(eng, sw(p))
			thin = append(thin, replay(p))
		} else {
			thin = append(thin, replay(p))
			eng = append(eng, sw(p))
		}
		i++
	}
	b.StopTimer()
	slices.Sort(eng)
	slices.Sort(thin)
	pct := func(ds []time.Duration, p int) float64 { return float64(ds[len(ds)*p/100].Microseconds()) / 1000 }
	b.ReportMetric(pct(eng, 50), "p50-ms")
	b.ReportMetric(pct(eng, 99), "p99-ms")
	b.ReportMetric(pct(thin, 50), "raw-p50-ms")
	b.ReportMetric(pct(thin, 99), "raw-p99-ms")
	b.ReportMetric(pct(eng, 50)/pct(thin, 50), "engine/raw-p50")
	b.ReportMetric(pct(eng, 99)/pct(thin, 99), "engine/raw-p99")
	for _, p := range []string{"available", "dnd"} {
		b.Logf("switch to %s: %d reads %v, %d changes %v", p, len(actions[p].reads), actionNames(actions[p].reads),
			len(actions[p].writes), actionNames(actions[p].writes))
	}
	// leave the bench queues empty for the next benchmark
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	naming := presence.DefaultNaming()
	for _, ext := range []string{"69999", "69998"} {
		tu := singleUser(ext)
		for _, q := range tu.Queues {
			r.ami.QueueRemove(ctx2, naming.Interface(&tu), q.Name)
		}
	}
}

// actionNames are the actions' names in order.
func actionNames(as []string) []string {
	out := make([]string, len(as))
	for i, a := range as {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "Action: "), "\r\n")
		out[i] = name
	}
	return out
}
