package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/callstate"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
	"github.com/presenced/presenced/queue"
	"github.com/presenced/presenced/webhook"
)

// The full-reconcile benchmark's setup: users in 10 queues, their desired state in Redis as a
// switch saves it, and the PBX holding exactly that state, put there in bulk.

// rcQueues are the queues every user of the reconcile benchmark is in.
func rcQueues() []string {
	qs := make([]string, 10)
	for i := range qs {
		qs[i] = fmt.Sprintf("bench%d", i+1)
	}
	return qs
}

// rcUsers are n users with extensions 20000, 20001, … (apart from the lab's 1001–1003 and the
// mass switch's 60000…), each with a desk phone and in every queue of rcQueues.
func rcUsers(n int) []presence.User {
	out := make([]presence.User, n)
	for i := range out {
		ext := strconv.Itoa(20000 + i)
		var qs []presence.QueueMembership
		for _, q := range rcQueues() {
			qs = append(qs, presence.QueueMembership{Name: q})
		}
		out[i] = presence.User{ID: presence.UserID("rc" + ext), Extension: ext,
			Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}}, Queues: qs}
	}
	return out
}

// rcProfiles: "available" (in every queue, not paused) and "lunch" (in every queue, paused
// with the reason "Lunch"), and a "dnd" so that the catalog does not add its default one.
// Only queue actions, no activation numbers (no profile lamps) and no presence state: what
// Compile makes of them is the queue members and the active-profile astdb key
// (PROFILE/<ext>/active; PROFILE/<ext>/info must be absent).
func rcProfiles() []presence.Profile {
	all := presence.QueueSelector{"all"}
	return []presence.Profile{
		{ID: "available", Name: "Available", OnEnter: []presence.Action{
			{Kind: presence.ActionQueueLogin, Queues: all}, {Kind: presence.ActionQueueUnpause, Queues: all}}},
		{ID: "lunch", Name: "Lunch", OnEnter: []presence.Action{
			{Kind: presence.ActionQueueLogin, Queues: all}, {Kind: presence.ActionQueuePause, Queues: all, Reason: "Lunch"}}},
		{ID: "dnd", Name: "Do not disturb", OnEnter: []presence.Action{
			{Kind: presence.ActionQueuePause, Queues: all, Reason: "DND"}}},
	}
}

// rcLunch says which users are at lunch (paused in every queue): every fifth.
func rcLunch(i int) bool { return i%5 == 0 }

// rcDesired is one user's desired state as a switch saves it, and the PBX state it means.
type rcDesired struct {
	user   *presence.User
	state  presence.UserState
	target *presence.Desired
}

// rcDesire computes, for the catalog's users, the state a switch to their profile from no
// profile at all saves (its one step, folded by presence.FoldSteps) and what it compiles to
// (presence.Compile): the setup writes exactly that to Redis and to the PBX.
func rcDesire(cat *presence.Catalog, naming presence.Naming) []rcDesired {
	out := make([]rcDesired, len(cat.Users))
	since := time.Now()
	for i, u := range cat.Users {
		to, _ := cat.Profile("available")
		if rcLunch(i) {
			to, _ = cat.Profile("lunch")
		}
		st := presence.UserState{Profile: to.ID, Since: since, Source: presence.SourceAPI, Actor: "bench",
			Steps: []presence.Step{{Profile: to.ID}}}
		in := presence.FoldSteps(u, st.Steps, cat.Profiles, nil)
		out[i] = rcDesired{user: u, state: st,
			target: presence.Compile(u, in, presence.Active{Profile: to}, cat.Profiles, naming)}
	}
	return out
}

// rcSaveStates saves the desired states in Redis, 64 at a time, as switches would have.
func rcSaveStates(ctx context.Context, states *presence.StateStore, ds []rcDesired) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(ds))
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := states.Save(ctx, d.user.ID, d.state); err != nil {
				errs <- fmt.Errorf("save state of %s: %w", d.user.ID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// rcPersistentMembers is what app_queue keeps in astdb for each queue with persistentmembers
// = yes (Queue/PersistentMembers/<queue>, docs/asterisk.md §2.5): the wanted members of every user,
// "iface;penalty;paused;membername;state_interface;reason_paused;wrapuptime" joined by "|".
func rcPersistentMembers(ds []rcDesired) map[string]string {
	members := map[string][]string{}
	for _, d := range ds {
		for _, q := range slices.Sorted(maps.Keys(d.target.Queues)) {
			m := d.target.Queues[q]
			if m == nil {
				continue
			}
			paused := 0
			if m.Paused {
				paused = 1
			}
			members[q] = append(members[q], fmt.Sprintf("%s;%d;%d;%s;%s;%s;0",
				m.Interface, m.Penalty, paused, m.MemberName, m.StateInterface, m.Reason))
		}
	}
	rows := map[string]string{}
	for q, ms := range members {
		rows["/Queue/PersistentMembers/"+q] = strings.Join(ms, "|")
	}
	return rows
}

// rcLoadPBX puts the desired queue members of ds into the lab Asterisk in bulk: an astdb file
// holding app_queue's persistent members (rcAstDB) becomes Asterisk's astdb (asterisk.conf
// astdbdir), and a restart loads them (persistentmembers = yes, as the lab ships). The other
// astdb keys the targets want (the active profile) then go in over AMI, pipelined. The
// original astdb is put back when the test ends. It returns once both of r's sessions are
// back, with how long the restart (until FullyBooted) and the astdb writes took.
func rcLoadPBX(t *testing.T, ctx context.Context, r *rcRig, ds []rcDesired) (restart, dbputs time.Duration) {
	t.Helper()
	file, err := rcAstDB(rcPersistentMembers(ds))
	if err != nil {
		t.Fatal(err)
	}
	dir := "/var/lib/asterisk/" + lab.Unique("rcbench")
	if _, err := env.Exec(ctx, "mkdir", "-p", dir); err != nil {
		t.Fatal(err)
	}
	if err := env.CopyToAsterisk(ctx, file, dir+"/astdb.sqlite3"); err != nil {
		t.Fatal(err)
	}
	rcSetAstDBDir(t, ctx, dir, r.mainReady)
	restart = rcRestart(t, ctx, r.ready()...)

	var puts []string
	for _, d := range ds {
		for _, k := range slices.Sorted(maps.Keys(d.target.AstDB)) {
			if v := d.target.AstDB[k]; v != nil {
				fam, key, _ := strings.Cut(k, "/")
				puts = append(puts, fmt.Sprintf("Action: DBPut\r\nFamily: %s\r\nKey: %s\r\nVal: %s\r\n\r\n", fam, key, *v))
			}
		}
	}
	raw := rcDialRaw(t)
	start := time.Now()
	if errs, err := raw.do(puts); err != nil || errs != 0 {
		t.Fatalf("DBPut of %d keys: %d errors, %v", len(puts), errs, err)
	}
	return restart, time.Since(start)
}

// rcSetAstDBDir points asterisk.conf's astdbdir at dir (effective at the next start) and puts
// the lab's own back when the test ends, with persistentmembers = yes and a restart (seen by
// the client behind ready), so that the lab goes on with its own astdb and no benchmark
// members.
func rcSetAstDBDir(t *testing.T, ctx context.Context, dir string, ready *rcReady) {
	t.Helper()
	if _, err := env.Exec(ctx, "sed", "-i", "-E", `s#^astdbdir *=>.*#astdbdir     => `+dir+`#`, lab.AsteriskConf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := env.SetPersistentMembers(ctx, true); err != nil {
			t.Error(err)
		}
		if _, err := env.Exec(ctx, "sed", "-i", "-E", `s#^astdbdir *=>.*#astdbdir     => /var/lib/asterisk#`, lab.AsteriskConf); err != nil {
			t.Error(err)
			return
		}
		if _, err := rcRestartErr(ctx, ready); err != nil {
			t.Error(err)
		}
	})
}

// rcReady receives the times an AMI client saw Asterisk fully booted (its OnReady hook).
type rcReady struct{ at chan time.Time }

func newRCReady() *rcReady { return &rcReady{at: make(chan time.Time, 16)} }

// hook is the client's OnReady.
func (r *rcReady) hook(context.Context) {
	select {
	case r.at <- time.Now():
	default:
	}
}

// drain forgets the readiness reported so far.
func (r *rcReady) drain() {
	for {
		select {
		case <-r.at:
		default:
			return
		}
	}
}

// next waits for the next readiness.
func (r *rcReady) next(ctx context.Context) (time.Time, error) {
	select {
	case at := <-r.at:
		return at, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("waiting for Asterisk fully booted: %w", ctx.Err())
	}
}

// rcRestart restarts Asterisk ("core restart now") and waits until the clients behind ready
// reconnected to the new one and saw it fully booted; it returns how long that took for the
// first.
func rcRestart(t *testing.T, ctx context.Context, ready ...*rcReady) time.Duration {
	t.Helper()
	d, err := rcRestartErr(ctx, ready...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func rcRestartErr(ctx context.Context, ready ...*rcReady) (time.Duration, error) {
	for _, r := range ready {
		r.drain()
	}
	start := time.Now()
	// The CLI connection may die with the old Asterisk: a non-zero exit code is expected.
	if _, err := env.CLI(ctx, "core restart now"); err != nil && !strings.Contains(err.Error(), "exit code") {
		return 0, fmt.Errorf("core restart now: %w", err)
	}
	var first time.Time
	for i, r := range ready {
		at, err := r.next(ctx)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			first = at
		}
	}
	return first.Sub(start), nil
}

// rcRig is presenced's engine over the lab as the daemon builds it (cmd/presenced
// buildEngine) with its default sessions: a main AMI session for changes and events, a read
// session for the bulk reads, further write sessions for queue changes (-bench.writers, 3 as
// the daemon's asterisk.ami.write_sessions of 4) and one for astdb and lamp changes, each
// group counting its actions in its own registry; the queue, astdb, blf and webhook
// concerns, the users' phones tracked for calls, and the states in Redis.
type rcRig struct {
	main, read *ami.Client
	// writers are the further write sessions: the queue concern's, then the astdb and lamp
	// changes' (none when -bench.writers is 0).
	writers                    []*ami.Client
	mainReg, readReg, writeReg *prometheus.Registry
	concernReg                 *prometheus.Registry // the concerns' metrics
	mainReady                  *rcReady
	readReady                  *rcReady
	writeReady                 []*rcReady
	devices                    *callstate.Phones
	engine                     *presence.Engine
}

// newRCRig builds the rig for cat's users, their states in states; start runs its engine, and
// it stops with the test.
func newRCRig(t *testing.T, cat *presence.Catalog, states *presence.StateStore) *rcRig {
	t.Helper()
	r := &rcRig{mainReg: prometheus.NewRegistry(), readReg: prometheus.NewRegistry(), writeReg: prometheus.NewRegistry(),
		mainReady: newRCReady(), readReady: newRCReady()}
	r.main = env.AMI(t, false, func(c *ami.Config) { c.Registerer = r.mainReg; c.OnReady = r.mainReady.hook })
	r.read = env.AMI(t, false, func(c *ami.Config) {
		c.Events = "system" // FullyBooted only, as the daemon's read session
		c.Registerer = r.readReg
		c.OnReady = r.readReady.hook
	})
	writer := func(role string) *ami.Client {
		ready := newRCReady()
		r.writeReady = append(r.writeReady, ready)
		c := env.AMI(t, false, func(c *ami.Config) {
			c.Events = "system" // as the daemon's further write sessions
			c.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"connection": role}, r.writeReg)
			c.OnReady = ready.hook
		})
		r.writers = append(r.writers, c)
		return c
	}
	var queueWriters []*ami.Client
	for i := range *benchWriters {
		queueWriters = append(queueWriters, writer(fmt.Sprintf("write%d", i+2)))
	}
	var changes *ami.Client // nil: the main session, as the daemon with one write session
	if *benchWriters > 0 {
		changes = writer("changes")
	}
	// The engine's and the concerns' warnings (operations that failed) go to the test's log.
	log := slog.New(slog.NewTextHandler(rcLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	r.concernReg = reg
	qc, err := queue.New(queue.Options{AMI: r.main, Reader: r.read, Writers: queueWriters, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := astdb.New(astdb.Options{AMI: r.main, Reader: r.read, Writer: changes, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := blf.New(blf.Options{AMI: r.main, Reader: r.read, Writer: changes, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	wc, err := webhook.New(webhook.Options{Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var phones []string
	for _, u := range cat.Users {
		for _, d := range u.Devices {
			phones = append(phones, d.Dial)
		}
	}
	r.devices = callstate.New(r.main, r.read, phones)
	r.engine, err = presence.NewEngine(presence.EngineOptions{
		Catalog: cat, Naming: presence.DefaultNaming(), States: states,
		Concerns: []presence.Concern{qc, dc, bc, wc},
		Devices:  r.devices,
		RoundTrips: func() uint64 {
			n := r.main.ActionsSent() + r.read.ActionsSent()
			for _, w := range r.writers {
				n += w.ActionsSent()
			}
			return n
		},
		ObserveTimeout: 5 * time.Minute,
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ready are the readiness of every session of the rig, the main one first.
func (r *rcRig) ready() []*rcReady {
	return append([]*rcReady{r.mainReady, r.readReady}, r.writeReady...)
}

// queueSessions is how many sessions the rig's queue changes go over.
func (r *rcRig) queueSessions() int { return 1 + *benchWriters }

// start runs the rig's engine until the test ends. It checks everyone as it starts, as a
// daemon does.
func (r *rcRig) start(t *testing.T) { presencetest.Run(t, r.engine) }

// rcLogWriter writes log lines to the test's log.
type rcLogWriter struct{ t *testing.T }

func (w rcLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rcStates is a state store of its own in the lab Redis.
func rcStates(t testing.TB) *presence.StateStore {
	t.Helper()
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 64
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return presence.NewStateStore(rdb, presence.StateStoreOptions{Prefix: lab.Unique("rcbench") + ":"})
}

// rcActions counts the actions the clients whose metrics are in regs sent, by name
// (presenced_ami_actions_total, any result), keepalive Pings left out.
func rcActions(t *testing.T, regs ...prometheus.Gatherer) map[string]int {
	t.Helper()
	mfs, err := prometheus.Gatherers(regs).Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "presenced_ami_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" && l.GetValue() != "Ping" {
					out[l.GetValue()] += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

// rcHistSum sums the observations of the histogram name (those whose label has value, when
// label is not ""), in seconds.
func rcHistSum(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if match {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

// rcDiff is after − before, zero counts left out.
func rcDiff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func rcTotal(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// rcRaw is the thinnest AMI client: one connection, events off, actions written back to back
// by one goroutine while the caller reads the answers.
type rcRaw struct {
	conn net.Conn
	r    *bufio.Reader
}

func rcDialRaw(t testing.TB) *rcRaw {
	t.Helper()
	c, err := net.Dial("tcp", env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rcRaw{conn: c, r: bufio.NewReaderSize(c, 1<<20)}
	if _, err := rc.r.ReadString('\n'); err != nil { // banner
		t.Fatal(err)
	}
	login := fmt.Sprintf("Action: Login\r\nUsername: %s\r\nSecret: %s\r\nEvents: off\r\n\r\n", env.AMIUser, env.AMISecret)
	if errs, err := rc.do([]string{login}); err != nil || errs != 0 {
		t.Fatalf("raw AMI login: %d errors, %v", errs, err)
	}
	return rc
}

// send writes the actions from a goroutine; the returned channel reports its error.
func (rc *rcRaw) send(actions []string) <-chan error {
	done := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(rc.conn, 1<<16)
		for _, a := range actions {
			if _, err := w.WriteString(a); err != nil {
				done <- err
				return
			}
		}
		done <- w.Flush()
	}()
	return done
}

// do sends simple (non-list) actions pipelined and reads their responses; it returns how
// many were errors.
func (rc *rcRaw) do(actions []string) (errs int, err error) {
	sent := rc.send(actions)
	for got := 0; got < len(actions); {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return errs, fmt.Errorf("raw AMI: %w", err)
		}
		if rest, ok := strings.CutPrefix(string(line), "Response: "); ok {
			got++
			if !strings.HasPrefix(rest, "Success") {
				errs++
			}
		}
	}
	return errs, <-sent
}

// rcDoSplit sends actions over the thin clients raws at once, each action over the client its
// interface (the Interface header) picks, as the queue concern picks among its sessions
// (queue.Concern.writer: FNV-1a of the interface in lower case); it returns how many were
// errors.
func rcDoSplit(raws []*rcRaw, actions []string) (errs int, err error) {
	parts := make([][]string, len(raws))
	for _, a := range actions {
		_, rest, _ := strings.Cut(a, "Interface: ")
		iface, _, _ := strings.Cut(rest, "\r\n")
		h := fnv.New32a()
		h.Write([]byte(strings.ToLower(iface)))
		i := int(h.Sum32() % uint32(len(raws)))
		parts[i] = append(parts[i], a)
	}
	var (
		mu   sync.Mutex
		errl []error
		wg   sync.WaitGroup
	)
	for i, part := range parts {
		wg.Go(func() {
			e, err := raws[i].do(part)
			mu.Lock()
			defer mu.Unlock()
			errs += e
			errl = append(errl, err)
		})
	}
	wg.Wait()
	return errs, errors.Join(errl...)
}

// getvars reads variables and functions (Getvar) pipelined: name → value.
func (rc *rcRaw) getvars(names []string) (map[string]string, error) {
	actions := make([]string, len(names))
	for i, n := range names {
		actions[i] = fmt.Sprintf("Action: Getvar\r\nActionID: %d\r\nVariable: %s\r\n\r\n", i, n)
	}
	sent := rc.send(actions)
	out := map[string]string{}
	msg := map[string]string{}
	for len(out) < len(names) {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("raw AMI: %w", err)
		}
		if s := strings.TrimRight(line, "\r\n"); s != "" {
			k, v, _ := strings.Cut(s, ": ")
			msg[k] = v
			continue
		}
		if i, err := strconv.Atoi(msg["ActionID"]); err == nil && i < len(names) {
			if msg["Response"] != "Success" {
				return nil, fmt.Errorf("raw AMI: Getvar %s: %s", names[i], msg["Message"])
			}
			out[names[i]] = msg["Value"]
		}
		msg = map[string]string{}
	}
	return out, <-sent
}

// lists sends list actions pipelined and reads up to each one's Complete event (or error
// response). each, when not nil, gets every message read (a list item's headers); nil reads
// as little as a client can: the lines, looking only for the ends of the lists.
func (rc *rcRaw) lists(actions []string, each func(msg map[string]string)) error {
	sent := rc.send(actions)
	msg := map[string]string{}
	for done := 0; done < len(actions); {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("raw AMI: %w", err)
		}
		switch {
		case string(line) == "EventList: Complete\r\n", strings.HasPrefix(string(line), "Response: Error"):
			done++
		}
		if each == nil {
			continue
		}
		if s := strings.TrimRight(string(line), "\r\n"); s == "" {
			if len(msg) > 0 {
				each(msg)
				msg = map[string]string{}
			}
		} else if k, v, ok := strings.Cut(s, ": "); ok {
			msg[k] = v
		}
	}
	return <-sent
}

// rcQueueAdd is the QueueAdd that puts m in queue q as presenced's plan does (joining already
// paused, with the reason, when m is paused).
func rcQueueAdd(q string, m *presence.QueueMember) string {
	return fmt.Sprintf("Action: QueueAdd\r\nQueue: %s\r\nInterface: %s\r\nPenalty: %d\r\nPaused: %v\r\nMemberName: %s\r\nStateInterface: %s\r\nReason: %s\r\n\r\n",
		q, m.Interface, m.Penalty, m.Paused, m.MemberName, m.StateInterface, m.Reason)
}

// rcQueueAdds are the QueueAdds of every member ds want.
func rcQueueAdds(ds []rcDesired) []string {
	var out []string
	for _, d := range ds {
		for _, q := range rcQueues() {
			if m := d.target.Queues[q]; m != nil {
				out = append(out, rcQueueAdd(q, m))
			}
		}
	}
	return out
}

// rcMember is a queue member as QueueStatus reports it.
type rcMember struct {
	paused bool
	reason string
}

// rcObserve lists every queue member (QueueStatus over the thinnest client): queue →
// interface → member.
func rcObserve(t *testing.T, raw *rcRaw) map[string]map[string]rcMember {
	t.Helper()
	out := map[string]map[string]rcMember{}
	err := raw.lists([]string{"Action: QueueStatus\r\n\r\n"}, func(m map[string]string) {
		if m["Event"] != "QueueMember" {
			return
		}
		q := out[m["Queue"]]
		if q == nil {
			q = map[string]rcMember{}
			out[m["Queue"]] = q
		}
		q[m["Location"]] = rcMember{paused: m["Paused"] == "1", reason: m["PausedReason"]}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rcVerifyPBX checks that the PBX holds exactly the queue members ds want (membership, pause
// and reason) and nothing else of the benchmark's users ("Local/2…" members), and that the
// queues' member counts (QUEUE_MEMBER(<queue>,count)) agree.
func rcVerifyPBX(t *testing.T, raw *rcRaw, ds []rcDesired) {
	t.Helper()
	have := rcObserve(t, raw)
	var counts []string
	for _, q := range rcQueues() {
		counts = append(counts, "QUEUE_MEMBER("+q+",count)")
	}
	count, err := raw.getvars(counts)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	want := map[string]int{}
	for _, d := range ds {
		for q, m := range d.target.Queues {
			if m == nil {
				continue
			}
			want[q]++
			h, ok := have[q][m.Interface]
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s not in %s", m.Interface, q))
			case h.paused != m.Paused || (m.Paused && h.reason != m.Reason):
				bad = append(bad, fmt.Sprintf("%s in %s: paused %v (%q), want %v (%q)", m.Interface, q, h.paused, h.reason, m.Paused, m.Reason))
			}
		}
	}
	for _, q := range rcQueues() {
		ours := 0
		for iface := range have[q] {
			if strings.HasPrefix(iface, "Local/2") {
				ours++
			}
		}
		if ours != want[q] {
			bad = append(bad, fmt.Sprintf("%s has %d benchmark members, want %d", q, ours, want[q]))
		}
		v := count["QUEUE_MEMBER("+q+",count)"]
		if n, _ := strconv.Atoi(v); n != len(have[q]) {
			bad = append(bad, fmt.Sprintf("QUEUE_MEMBER(%s,count) = %s, QueueStatus lists %d", q, v, len(have[q])))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("the PBX does not hold the desired state (%d differences), e.g.:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}
