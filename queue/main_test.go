package queue

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// The tests run against the real lab Asterisk 22 (internal/lab): queues support (no static
// members) and sales (static member PJSIP/1002). Each test uses its own member interfaces,
// built from its name, and removes what it added.
var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

func testLogger(t testing.TB) *slog.Logger { return lab.Logger(t) }

func testCtx(t testing.TB) context.Context { return lab.Context(t) }

// ext returns a unique extension for user i of test t: 9, five digits from the test's name, and
// two digits for i.
func ext(t testing.TB, i int) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("9%05d%02d", h.Sum32()%100000, i)
}

// iface is the queue member interface of extension e under the default naming.
func iface(e string) string {
	return strings.ReplaceAll(presence.DefaultNaming().QueueInterface, "{ext}", e)
}

// counter counts the actions written on a Client's connections and the replies read back, to
// tell how many actions of each kind were sent and how many were in flight at most.
type counter struct {
	mu          sync.Mutex
	actions     map[string]int
	outstanding int
	peak        int
}

func newCounter() *counter { return &counter{actions: map[string]int{}} }

func (c *counter) count(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actions[action]
}

func (c *counter) maxInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

func (c *counter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: nc, c: c}, nil
}

// countingConn feeds a counter from the lines written ("Action: X") and read ("Response: ").
type countingConn struct {
	net.Conn
	c          *counter
	wmu, rmu   sync.Mutex
	wbuf, rbuf []byte // incomplete lines
}

func (cc *countingConn) Write(p []byte) (int, error) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.wbuf = lines(append(cc.wbuf, p...), func(line string) {
		if name, ok := strings.CutPrefix(line, "Action: "); ok {
			cc.c.mu.Lock()
			cc.c.actions[name]++
			cc.c.outstanding++
			cc.c.peak = max(cc.c.peak, cc.c.outstanding)
			cc.c.mu.Unlock()
		}
	})
	return cc.Conn.Write(p)
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.rmu.Lock()
	defer cc.rmu.Unlock()
	cc.rbuf = lines(append(cc.rbuf, p[:n]...), func(line string) {
		if strings.HasPrefix(line, "Response: ") {
			cc.c.mu.Lock()
			cc.c.outstanding--
			cc.c.mu.Unlock()
		}
	})
	return n, err
}

// lines calls f for each complete CR LF line of b and returns the rest.
func lines(b []byte, f func(string)) []byte {
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return b
		}
		f(string(b[:i]))
		b = b[i+2:]
	}
}

// startClient runs an AMI client against the lab until the test ends and waits for
// FullyBooted. test logs in as the all-powerful test user, else as the daemon's user. Events
// are limited to system and Pings are off, so only the tests' own actions are counted.
func startClient(t testing.TB, test bool, mod func(*ami.Config)) *ami.Client {
	t.Helper()
	return env.AMI(t, test, func(cfg *ami.Config) {
		cfg.Events = "system"
		cfg.PingInterval = time.Hour // no Pings among the counted actions
		if mod != nil {
			mod(cfg)
		}
	})
}

// fixture is a Concern on its own AMI client (the daemon's least-privilege user, its
// connection counted) and registry, plus a second client to read and set up the PBX.
type fixture struct {
	c     *Concern
	reg   *prometheus.Registry
	count *counter
	pbx   *ami.Client
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), count: newCounter()}
	client := startClient(t, false, func(cfg *ami.Config) { cfg.Dial = f.count.dial })
	opts := Options{AMI: client, Logger: testLogger(t), Registerer: f.reg}
	if mod != nil {
		mod(&opts)
	}
	var err error
	if f.c, err = New(opts); err != nil {
		t.Fatal(err)
	}
	f.pbx = startClient(t, true, nil)
	return f
}

// actions is presenced_queue_actions_total{action,result}.
func (f *fixture) actions(action, result string) int {
	return int(testutil.ToFloat64(f.c.met.actions.WithLabelValues(action, result)))
}

// member reads iface's membership of q from the PBX (never from the concern).
func (f *fixture) member(t testing.TB, q, iface string) (ami.QueueMember, bool) {
	t.Helper()
	st, err := f.pbx.QueueStatus(testCtx(t), q, "")
	if err != nil {
		t.Fatalf("QueueStatus %s: %v", q, err)
	}
	for _, m := range st.Members {
		if m.Queue == q && strings.EqualFold(m.Location, iface) {
			return m, true
		}
	}
	return ami.QueueMember{}, false
}

// add puts iface into q behind the concern's back.
func (f *fixture) add(t testing.TB, spec ami.QueueMemberSpec) {
	t.Helper()
	if err := f.pbx.QueueAdd(testCtx(t), spec); err != nil {
		t.Fatal(err)
	}
}

// cleanup removes the interfaces from every lab queue when the test ends.
func (f *fixture) cleanup(t testing.TB, ifaces ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, i := range ifaces {
			for _, q := range []string{"support", "sales"} {
				_ = f.pbx.QueueRemove(ctx, i, q)
			}
		}
	})
}
