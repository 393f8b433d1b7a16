// Package bench measures presenced against the lab Asterisk: a single switch touching 10 queues,
// mass switches through the engine against a minimal client pipelining the naive action set in
// the same run, and memory per configured user. Figures are recorded in docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/bench -bench.users 1000
package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
	"github.com/presenced/presenced/queue"
	"github.com/presenced/presenced/webhook"
)

var (
	env               *lab.Env
	benchUsers        = flag.Int("bench.users", 1000, "users in BenchmarkMassSwitch (each in 5 queues)")
	benchReader       = flag.Bool("bench.reader", true, "give the concerns a second AMI connection to observe through, as the daemon does")
	benchRounds       = flag.Int("bench.rounds", 3, "rounds of BenchmarkMassSwitch; each client's median is reported")
	benchEvents       = flag.String("bench.events", "", `AMI event classes of presenced's connection ("" = the daemon's default, system,call,agent,user)`)
	benchWorkers      = flag.Int("bench.workers", 0, "the engine's workers (0 = the engine's default)")
	benchClients      = flag.String("bench.clients", "", "BenchmarkMassSwitch: the clients to run, comma-separated (default all: naive,same,sameN,engine,engine1); ratios to a client not run are not reported")
	benchDirect       = flag.Bool("bench.direct", false, "reach Asterisk and Redis at their containers' bridge addresses, not through Docker's userland port proxy (lab.Env.AMIDirectAddr)")
	benchKnown        = flag.Bool("bench.known", true, "let the queue concern answer from what it knows by its events (queue.Options.KnownFor); false: it reads every time")
	benchPhaseProfile = flag.String("bench.phaseprofile", "", "BenchmarkMassSwitch: write a CPU profile of the engine's turns at this phase only (login, pause or logout) to the file -bench.phaseprofile.out")
	benchPhaseOut     = flag.String("bench.phaseprofile.out", "phase.cpu", "where -bench.phaseprofile writes")
	benchWriters      = flag.Int("bench.writers", 3, "further AMI sessions for the queue concern's changes (queue.Options.Writers; 3 as the daemon's default asterisk.ami.write_sessions of 4)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(lab.Main(m, lab.Options{Asterisk: true, Redis: true}, func(e *lab.Env) {
		env = e
		if *benchDirect {
			if e.AMIDirectAddr == "" || e.RedisDirectURL == "" {
				fmt.Fprintln(os.Stderr, "bench: -bench.direct: the lab containers have no bridge addresses")
				e.Close(context.Background())
				os.Exit(2)
			}
			e.AMIAddr, e.RedisURL = e.AMIDirectAddr, e.RedisDirectURL
		}
	}))
}

var massQueues = []string{"bench1", "bench2", "bench3", "bench4", "bench5"}

// rig is presenced's switching path over the lab: AMI client, concerns, Redis state, engine.
type rig struct {
	ami    *ami.Client
	engine *presence.Engine
	rdb    *redis.Client
	reg    *prometheus.Registry

	concerns []presence.Concern
}

func newRig(tb testing.TB, users []presence.User, profiles []presence.Profile) *rig {
	tb.Helper()
	return newRigWith(tb, users, profiles, *benchWriters, nil)
}

// newRigWith is newRig with writers further sessions for queue changes, and mod adjusting the
// configuration of the writing AMI sessions (reader false) and of the read session (reader
// true), e.g. to record what they send.
func newRigWith(tb testing.TB, users []presence.User, profiles []presence.Profile, writers int, mod func(reader bool, cfg *ami.Config)) *rig {
	tb.Helper()
	if mod == nil {
		mod = func(bool, *ami.Config) {}
	}
	c := env.AMI(tb, false, func(cfg *ami.Config) { cfg.Events = *benchEvents; mod(false, cfg) })
	reader := c
	if *benchReader {
		reader = env.AMI(tb, false, func(cfg *ami.Config) { cfg.Events = "system"; mod(true, cfg) })
	}
	var more []*ami.Client
	for range writers {
		more = append(more, env.AMI(tb, false, func(cfg *ami.Config) { cfg.Events = "system"; mod(false, cfg) }))
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	knownFor := time.Duration(0) // the default
	if !*benchKnown {
		knownFor = -1
	}
	qc, err := queue.New(queue.Options{AMI: c, Reader: reader, Writers: more, Logger: log, Registerer: reg, KnownFor: knownFor})
	if err != nil {
		tb.Fatal(err)
	}
	// As the daemon does: with further write sessions, the astdb and lamp changes over one
	// more session of their own, without events.
	var writer *ami.Client
	if writers > 0 {
		writer = env.AMI(tb, false, func(cfg *ami.Config) { cfg.Events = "system"; mod(false, cfg) })
	}
	dc, err := astdb.New(astdb.Options{AMI: c, Reader: reader, Writer: writer, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	bc, err := blf.New(blf.Options{AMI: c, Reader: reader, Writer: writer, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	wc, err := webhook.New(webhook.Options{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		tb.Fatal(err)
	}
	opt.PoolSize = 64
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	states := presence.NewStateStore(rdb, presence.StateStoreOptions{Prefix: fmt.Sprintf("bench:%d:", time.Now().UnixNano())})
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: users, Profiles: profiles})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: states,
		Concerns: []presence.Concern{qc, dc, bc, wc}, Watchers: []presence.Watcher{qc, dc, bc}, // as the daemon
		Logger: log, ObserveTimeout: time.Minute, Workers: *benchWorkers, Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	presencetest.Run(tb, e)
	return &rig{ami: c, engine: e, rdb: rdb, reg: reg, concerns: []presence.Concern{qc, dc, bc, wc}}
}

// massUsers are n users with extensions 60000.. in the 5 bench queues.
func massUsers(n int) []presence.User { return massUsersFrom(n, 60000) }

// massUsersFrom is massUsers with extensions from first on: the raw clients change twins of
// the engine's users (70000..), which the engine, watching the events of its own users, would
// otherwise take for drift and repair, and the second engine has users of its own (80000..).
func massUsersFrom(n, first int) []presence.User {
	out := make([]presence.User, n)
	for i := range out {
		ext := fmt.Sprint(first + i)
		qs := make([]presence.QueueMembership, len(massQueues))
		for j, q := range massQueues {
			qs[j] = presence.QueueMembership{Name: q}
		}
		out[i] = presence.User{ID: presence.UserID("b" + ext), Extension: ext,
			Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}}, Queues: qs}
	}
	return out
}

// massProfiles: in (logged in, unpaused), paused (all queues), out (logged out). No
// activation numbers and no presence, so a switch touches what the naive client touches plus
// one astdb key (the active profile).
func massProfiles() []presence.Profile {
	all := presence.QueueSelector{"all"}
	return []presence.Profile{
		{ID: "available", OnEnter: []presence.Action{{Kind: presence.ActionQueueLogin, Queues: all}, {Kind: presence.ActionQueueUnpause, Queues: all}}},
		{ID: "dnd", OnEnter: []presence.Action{{Kind: presence.ActionQueuePause, Queues: all, Reason: "DND"}}},
		{ID: "out", OnEnter: []presence.Action{{Kind: presence.ActionQueueLogout, Queues: all}}},
	}
}

// switchAll switches every user at once and fails on any error or drift.
func (r *rig) switchAll(tb testing.TB, users []presence.User, profile string) time.Duration {
	tb.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users {
		wg.Go(func() {
			res, err := r.engine.Switch(context.Background(), presence.SwitchRequest{User: u.ID, Profile: profile, Source: presence.SourceSchedule})
			if err == nil && !res.InSync {
				err = fmt.Errorf("%s not in sync: %+v", u.ID, res.Outcomes)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return took
}

// rawClient is the thinnest AMI client: one connection, events off, actions written back to
// back while a reader counts the responses.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(tb testing.TB) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", env.AMIAddr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawClient{conn: c, r: bufio.NewReaderSize(c, 64<<10)}
	if _, err := rc.r.ReadString('\n'); err != nil { // banner
		tb.Fatal(err)
	}
	fmt.Fprintf(c, "Action: Login\r\nUsername: %s\r\nSecret: %s\r\nEvents: off\r\n\r\n", env.AMIUser, env.AMISecret)
	if errs := rc.responses(1); errs != 0 {
		tb.Fatal("raw login failed")
	}
	return rc
}

// run writes all actions pipelined and waits for as many responses; it returns the errors.
func (rc *rawClient) run(tb testing.TB, actions []string) (time.Duration, int) {
	tb.Helper()
	start := time.Now()
	go func() {
		w := bufio.NewWriterSize(rc.conn, 64<<10)
		for _, a := range actions {
			w.WriteString(a)
		}
		w.Flush()
	}()
	errs := rc.responses(len(actions))
	return time.Since(start), errs
}

func (rc *rawClient) responses(n int) (errs int) {
	for got := 0; got < n; {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return n - got + errs
		}
		if strings.HasPrefix(line, "Response: ") {
			got++
			if !strings.HasPrefix(line, "Response: Success") {
				errs++
			}
		}
	}
	return errs
}

// rawActions is what a thin client sends for one phase of the mass switch. Both sets write the
// active profile where the dialplan reads it, as presenced does:
//   - "naive": one action per user and queue (the obvious way);
//   - "same": exactly the actions presenced's engine sends (one QueuePause without Queue per
//     user for "pause all"): the raw limit of presenced's own plan.
func rawActions(users []presence.User, naming presence.Naming, set, phase string) []string {
	out := make([]string, 0, len(users)*(len(massQueues)+1))
	for _, as := range rawActionsByUser(users, naming, set, phase) {
		out = append(out, as...)
	}
	return out
}

// rawActionsByUser is rawActions, each user's actions apart (in their order).
func rawActionsByUser(users []presence.User, naming presence.Naming, set, phase string) [][]string {
	all := make([][]string, 0, len(users))
	profile := map[string]string{"login": "available", "pause": "dnd", "logout": "out"}[phase]
	for _, u := range users {
		var out []string
		iface := naming.Interface(&u)
		if phase == "pause" && set == "same" {
			out = append(out, fmt.Sprintf("Action: QueuePause\r\nInterface: %s\r\nPaused: true\r\nReason: DND\r\n\r\n", iface))
		} else {
			for _, q := range massQueues {
				switch phase {
				case "login":
					out = append(out, fmt.Sprintf("Action: QueueAdd\r\nQueue: %s\r\nInterface: %s\r\nMemberName: %s\r\nStateInterface: hint:%s@hints\r\nPenalty: 0\r\n\r\n", q, iface, u.ID, u.Extension))
				case "pause":
					out = append(out, fmt.Sprintf("Action: QueuePause\r\nQueue: %s\r\nInterface: %s\r\nPaused: true\r\nReason: DND\r\n\r\n", q, iface))
				case "logout":
					out = append(out, fmt.Sprintf("Action: QueueRemove\r\nQueue: %s\r\nInterface: %s\r\n\r\n", q, iface))
				}
			}
		}
		out = append(out, fmt.Sprintf("Action: DBPut\r\nFamily: PROFILE\r\nKey: %s/active\r\nVal: %s\r\n\r\n", u.Extension, profile))
		all = append(all, out)
	}
	return all
}

// runSplit sends the users' actions over the sessions, user by user round robin (a user's
// actions stay on one session, in order), each session pipelining its share, all at once; it
// returns the time until every answer was read and the errors.
func runSplit(tb testing.TB, sessions []*rawClient, byUser [][]string) (time.Duration, int) {
	tb.Helper()
	parts := make([][]string, len(sessions))
	for i, as := range byUser {
		parts[i%len(sessions)] = append(parts[i%len(sessions)], as...)
	}
	start := time.Now()
	errs := make([]int, len(sessions))
	var wg sync.WaitGroup
	for s, rc := range sessions {
		wg.Go(func() { _, errs[s] = rc.run(tb, parts[s]) })
	}
	wg.Wait()
	n := 0
	for _, e := range errs {
		n += e
	}
	return time.Since(start), n
}

// phaseProfile starts the CPU profile of -bench.phaseprofile when phase is its phase, and
// returns what stops it. Each round's profile goes to a file of its own: -bench.phaseprofile.out,
// then the same name with .1, .2, ... (go tool pprof merges the files it is given).
func phaseProfile(tb testing.TB, phase string) (stop func()) {
	tb.Helper()
	if *benchPhaseProfile != phase {
		return func() {}
	}
	name := *benchPhaseOut
	for i := 1; ; i++ {
		if _, err := os.Stat(name); err != nil {
			break
		}
		name = fmt.Sprintf("%s.%d", *benchPhaseOut, i)
	}
	return cpuProfile(tb, name)
}

// cpuProfile starts a CPU profile written to the file name and returns what stops it.
func cpuProfile(tb testing.TB, name string) (stop func()) {
	tb.Helper()
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err) // -cpuprofile too: one CPU profile at a time
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
}

// membersIn counts the bench users' members in the bench queues and how many are paused.
func membersIn(tb testing.TB, c *ami.Client) (members, paused int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range massQueues {
		st, err := c.QueueStatus(ctx, q, "")
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range st.Members {
			if strings.HasPrefix(m.Location, "Local/6") || strings.HasPrefix(m.Location, "Local/7") || strings.HasPrefix(m.Location, "Local/8") {
				members++
				if m.Paused {
					paused++
				}
			}
		}
	}
	return members, paused
}

// TestMassSwitchSmall runs the mass-switch path with a few users and checks the PBX after each
// phase: the benchmark's harness stays honest.
func TestMassSwitchSmall(t *testing.T) {
	users := massUsers(20)
	r := newRig(t, users, massProfiles())
	r.switchAll(t, users, "available")
	if m, p := membersIn(t, r.ami); m != 100 || p != 0 {
		t.Fatalf("after login: %d members, %d paused; want 100, 0", m, p)
	}
	r.switchAll(t, users, "dnd")
	if m, p := membersIn(t, r.ami); m != 100 || p != 100 {
		t.Fatalf("after pause: %d members, %d paused; want 100, 100", m, p)
	}
	r.switchAll(t, users, "out")
	if m, _ := membersIn(t, r.ami); m != 0 {
		t.Fatalf("after logout: %d members; want 0", m)
	}
}

// BenchmarkMassSwitch: -bench.users users × 5 queues log in, pause in every queue and log
// out, all at once, by four clients in the same run: the naive action set and the engine's own
// action set, each sent pipelined by the thinnest client over one connection, and presenced's
// engine (Redis state, batched observation, plan, apply) changing the PBX over 1 + -bench.writers
// sessions ("engine") and over one ("engine1"), and the engine's action set sent by the thinnest
// client split user by user over as many sessions as the engine's ("sameN": the raw limit of
// the engine's plan in parallel, rawN/naive says how far below naive Asterisk itself can go). The clients take turns over -bench.rounds
// rounds, in a rotating order, and the medians are reported: users/s per client and phase, the
// ratios engine time ÷ naive time and engine time ÷ raw time of the same actions (below 1: the
// engine is faster), engine1 ÷ naive, the engine's PBX reads per phase with the seconds
// they took, and the CPU time the benchmark's process (the engine) used in its turn.
//
// The engine watches the PBX's events as the daemon's does (its concerns are its Watchers), so
// the raw clients change twins of its users (extensions from 70000), which it does not manage,
// and the second engine has users of its own (from 80000). One cycle of the engines, not timed,
// comes first: their first switches read what they do not know yet.
func BenchmarkMassSwitch(b *testing.B) {
	users := massUsers(*benchUsers)
	twins := massUsersFrom(*benchUsers, 70000)  // the raw clients'
	users1 := massUsersFrom(*benchUsers, 80000) // the second engine's
	r := newRig(b, users, massProfiles())
	raw := dialRaw(b)
	// The thinnest client with as many sessions as the engine writes over: the raw limit of
	// the engine's own plan sent in parallel.
	raws := []*rawClient{raw}
	for range *benchWriters {
		raws = append(raws, dialRaw(b))
	}
	naming := presence.DefaultNaming()
	phases := []string{"login", "pause", "logout"}
	clients := []string{"naive", "same", "sameN", "engine", "engine1"}
	if *benchClients != "" {
		chosen := strings.Split(*benchClients, ",")
		for _, c := range chosen {
			if !slices.Contains(clients, c) {
				b.Fatalf("-bench.clients: unknown client %q (known: %s)", c, strings.Join(clients, ","))
			}
		}
		clients = chosen
	}
	// The same engine changing the PBX over one session only, made only when it runs: an idle
	// rig's event session would read every event of the run on the cores Asterisk shares.
	var r1 *rig
	if slices.Contains(clients, "engine1") {
		r1 = newRigWith(b, users1, massProfiles(), 0, nil)
	}
	engineProfile := map[string]string{"login": "available", "pause": "dnd", "logout": "out"}
	// A cycle that is not timed: the engines' first switches after they start read what they
	// do not know yet (every user's queue members, which the daemon's first full check reads
	// for the users it has state for), later ones follow the events.
	for _, phase := range phases {
		if slices.Contains(clients, "engine") {
			r.switchAll(b, users, engineProfile[phase])
		}
		if r1 != nil {
			r1.switchAll(b, users1, engineProfile[phase])
		}
	}
	for b.Loop() {
		took := map[string][]float64{}         // client/phase → seconds per round
		batches := map[string][]float64{}      // phase → the engine's PBX reads per round
		reading := map[string][]float64{}      // phase → seconds the engine spent reading the PBX
		queueReading := map[string][]float64{} // phase → of which the queue concern's reads
		cpu := map[string][]float64{}          // phase → CPU seconds of this process (the engine's)
		for round := range *benchRounds {
			for i := range clients {
				client := clients[(i+round)%len(clients)]
				for _, phase := range phases {
					var d time.Duration
					if client == "engine1" {
						d = r1.switchAll(b, users1, engineProfile[phase])
					} else if client == "engine" {
						reads0, reading0 := r.hist(b, "presenced_observe_duration_seconds")
						cpu0 := processCPU(b)
						_, queueReading0 := r.hist(b, "presenced_queue_observe_duration_seconds")
						stop := phaseProfile(b, phase)
						d = r.switchAll(b, users, engineProfile[phase])
						stop()
						reads1, reading1 := r.hist(b, "presenced_observe_duration_seconds")
						_, queueReading1 := r.hist(b, "presenced_queue_observe_duration_seconds")
						batches[phase] = append(batches[phase], float64(reads1-reads0))
						reading[phase] = append(reading[phase], reading1-reading0)
						queueReading[phase] = append(queueReading[phase], queueReading1-queueReading0)
						cpu[phase] = append(cpu[phase], (processCPU(b) - cpu0).Seconds())
					} else if client == "sameN" {
						var errs int
						d, errs = runSplit(b, raws, rawActionsByUser(twins, naming, "same", phase))
						if errs != 0 {
							b.Fatalf("%s %s: %d errors", client, phase, errs)
						}
					} else {
						var errs int
						d, errs = raw.run(b, rawActions(twins, naming, client, phase))
						if errs != 0 {
							b.Fatalf("%s %s: %d errors", client, phase, errs)
						}
					}
					took[client+"/"+phase] = append(took[client+"/"+phase], d.Seconds())
				}
				if m, _ := membersIn(b, r.ami); m != 0 {
					b.Fatalf("%s left %d members", client, m)
				}
			}
		}
		n := float64(len(users))
		for _, phase := range phases {
			med := func(client string) float64 { return median(took[client+"/"+phase]) }
			for _, client := range clients {
				b.ReportMetric(n/med(client), client+"-"+phase+"-users/s")
			}
			ratio := func(a, c, name string) {
				if len(took[a+"/"+phase]) > 0 && len(took[c+"/"+phase]) > 0 {
					b.ReportMetric(med(a)/med(c), name+"-"+phase)
				}
			}
			ratio("engine", "naive", "engine/naive")
			ratio("engine", "same", "engine/raw")
			ratio("engine", "sameN", "engine/rawN")
			ratio("sameN", "naive", "rawN/naive")
			ratio("engine1", "naive", "engine1/naive")
			if len(batches[phase]) > 0 {
				b.ReportMetric(median(batches[phase]), "engine-reads-"+phase)
				b.ReportMetric(median(reading[phase]), "engine-read-s-"+phase)
				b.ReportMetric(median(queueReading[phase]), "engine-queue-read-s-"+phase)
				b.ReportMetric(median(cpu[phase]), "engine-cpu-s-"+phase)
			}
		}
	}
}

// processCPU is the CPU time (user and system) this process has used: during the engine's
// turn, presenced's own work (and the rig's reading of the events its session receives), on the
// cores it shares with Asterisk.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hist is how many observations the engine's histogram name holds, and their sum.
func (r *rig) hist(tb testing.TB, name string) (count uint64, sum float64) {
	tb.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				count += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return count, sum
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkMemory10kUsers: heap held by a catalog and engine of 10,000 users in 5 queues.
func BenchmarkMemory10kUsers(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		users := massUsers(10000)
		cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: users, Profiles: massProfiles()})
		if err != nil {
			b.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(),
			States: presence.NewStateStore(rdb, presence.StateStoreOptions{})})
		if err != nil {
			b.Fatal(err)
		}
		users = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10000, "heap-bytes/user")
		runtime.KeepAlive(e)
		rdb.Close()
	}
}
