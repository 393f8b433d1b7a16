package bench

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkSessions measures whether Asterisk applies changes faster over several AMI sessions
// than over one: the same actions, split evenly between 1, 2 and 4 sessions of the thinnest
// client (each pipelining its share), in rounds that take turns. The actions are those of a
// feature-code switch (a profile key, a DND key, a lamp, a presence state per user: astdb
// writes and device and presence state changes), and, separately, queue changes (QueueAdd
// then QueueRemove of users in the 5 bench queues). Reported: actions/s per session count.
//
//	go test -run '^$' -bench Sessions -benchtime 1x ./internal/bench -bench.users 1000
func BenchmarkSessions(b *testing.B) {
	n := *benchUsers
	switchActions := func(round int) []string {
		out := make([]string, 0, 4*n)
		for i := range n {
			ext := 70000 + i
			v := []string{"lunch", "available"}[round%2]
			st := []string{"INUSE", "NOT_INUSE"}[round%2]
			out = append(out,
				fmt.Sprintf("Action: DBPut\r\nFamily: PROFILE\r\nKey: %d/active\r\nVal: %s\r\n\r\n", ext, v),
				fmt.Sprintf("Action: DBPut\r\nFamily: DND\r\nKey: %d\r\nVal: %s\r\n\r\n", ext, v),
				fmt.Sprintf("Action: Setvar\r\nVariable: DEVICE_STATE(Custom:DND%d)\r\nValue: %s\r\n\r\n", ext, st),
				fmt.Sprintf("Action: Setvar\r\nVariable: PRESENCE_STATE(CustomPresence:%d)\r\nValue: %s,,\r\n\r\n", ext, map[string]string{"lunch": "away", "available": "available"}[v]))
		}
		return out
	}
	queueActions := func(round int) (adds, removes []string) {
		for i := range n {
			iface := fmt.Sprintf("Local/%d@presenced-agents", 70000+i)
			for _, q := range massQueues {
				adds = append(adds, fmt.Sprintf("Action: QueueAdd\r\nQueue: %s\r\nInterface: %s\r\nPenalty: 0\r\n\r\n", q, iface))
				removes = append(removes, fmt.Sprintf("Action: QueueRemove\r\nQueue: %s\r\nInterface: %s\r\n\r\n", q, iface))
			}
		}
		return adds, removes
	}
	counts := []int{1, 2, 4}
	raws := make([]*rcRaw, 4)
	for i := range raws {
		raws[i] = rcDialRaw(b)
	}
	// send sends parts[s] over session s, all at once, and waits for every answer.
	send := func(parts [][]string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for s := range parts {
			wg.Go(func() {
				if errs, err := raws[s].do(parts[s]); err != nil || errs != 0 {
					b.Errorf("session %d of %d: %d errors, %v", s, len(parts), errs, err)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	// split sends as over k sessions, user by user (4 actions per user for switches, 5 for
	// queues: a user's actions stay on one session, in order) and waits for every answer.
	split := func(as []string, per, k int) time.Duration {
		parts := make([][]string, k)
		for i := 0; i < len(as); i += per {
			s := (i / per) % k
			parts[s] = append(parts[s], as[i:i+per]...)
		}
		return send(parts)
	}
	// byQueue sends as over k sessions, queue by queue (every change of one queue on one
	// session, the queues dealt round robin) and waits for every answer.
	byQueue := func(as []string, k int) time.Duration {
		parts := make([][]string, k)
		for i, a := range as {
			s := (i % len(massQueues)) % k
			parts[s] = append(parts[s], a)
		}
		return send(parts)
	}
	for b.Loop() {
		took := map[string][]float64{}
		for round := range *benchRounds {
			for i := range counts {
				k := counts[(i+round)%len(counts)]
				as := switchActions(round*len(counts) + i)
				took[fmt.Sprintf("switch-%d", k)] = append(took[fmt.Sprintf("switch-%d", k)], split(as, 4, k).Seconds())
				adds, removes := queueActions(round)
				took[fmt.Sprintf("qadd-%d", k)] = append(took[fmt.Sprintf("qadd-%d", k)], split(adds, len(massQueues), k).Seconds())
				took[fmt.Sprintf("qremove-%d", k)] = append(took[fmt.Sprintf("qremove-%d", k)], split(removes, len(massQueues), k).Seconds())
				took[fmt.Sprintf("qaddq-%d", k)] = append(took[fmt.Sprintf("qaddq-%d", k)], byQueue(adds, k).Seconds())
				took[fmt.Sprintf("qremoveq-%d", k)] = append(took[fmt.Sprintf("qremoveq-%d", k)], byQueue(removes, k).Seconds())
			}
		}
		for _, what := range []string{"switch", "qadd", "qremove", "qaddq", "qremoveq"} {
			per := map[string]int{"switch": 4 * n, "qadd": len(massQueues) * n, "qremove": len(massQueues) * n,
				"qaddq": len(massQueues) * n, "qremoveq": len(massQueues) * n}[what]
			for _, k := range counts {
				b.ReportMetric(float64(per)/median(took[fmt.Sprintf("%s-%d", what, k)]), fmt.Sprintf("%s-%dsess-actions/s", what, k))
			}
		}
	}
	// leave no keys behind
	var dels []string
	for i := range n {
		dels = append(dels, fmt.Sprintf("Action: DBDelTree\r\nFamily: PROFILE\r\nKey: %d\r\n\r\n", 70000+i),
			fmt.Sprintf("Action: DBDel\r\nFamily: DND\r\nKey: %d\r\n\r\n", 70000+i))
	}
	raws[0].do(dels)
}
