package leader_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/leader"
)

// helperEnv, set in the environment of this test binary, makes it a leader process (runHelper)
// instead of running the tests: TestFailoverAfterKill kills it with SIGKILL.
const helperEnv = "PRESENCED_LEADER_TEST_HELPER"

// runHelper runs an Elector with the default options on the Redis at $helperEnv_ADDR for the
// Asterisk $helperEnv_ASTERISK as instance $helperEnv, and prints "leading <epoch>" when it
// starts leading. It runs until it is killed.
func runHelper() int {
	rdb := redis.NewClient(storeOptions(os.Getenv(helperEnv + "_ADDR")))
	o := leader.Options{Redis: rdb, Asterisk: os.Getenv(helperEnv + "_ASTERISK"), Instance: os.Getenv(helperEnv)}
	o.OnStartedLeading = func(_ context.Context, epoch int64) { fmt.Printf("leading %d\n", epoch) }
	e, err := leader.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := e.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// spawn starts a leader process and returns it and the epochs it starts leading with.
func spawn(t *testing.T, asterisk, instance string) (*exec.Cmd, <-chan int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+instance, helperEnv+"_ADDR="+labAddr(t), helperEnv+"_ASTERISK="+asterisk)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	epochs := make(chan int64, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "leading "); ok {
				if epoch, err := strconv.ParseInt(n, 10, 64); err == nil {
					epochs <- epoch
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, epochs
}

// TestFailoverAfterKill: a leader process killed with SIGKILL (no release) is replaced by a
// standby within Lease + RenewInterval, with the default options; the failover times of many
// runs are reported.
func TestFailoverAfterKill(t *testing.T) {
	const workers, runs = 4, 5
	var (
		mu    sync.Mutex
		times []time.Duration
	)
	// The workers run at once whatever -parallel says: they mostly wait for leases to expire.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			t.Run(fmt.Sprintf("worker %d", w), func(t *testing.T) {
				asterisk := lab.Unique("pbx")
				rdb := client(t, labAddr(t))
				s := watch(t)
				var standby *node // leads between runs
				for r := range runs {
					cmd, epochs := spawn(t, asterisk, fmt.Sprintf("killed-%d", r))
					if standby != nil {
						standby.stop() // releases the lease to the new process
					}
					var epoch int64
					select {
					case epoch = <-epochs:
					case <-time.After(3 * defaults.Lease):
						t.Fatalf("run %d: the leader process does not lead", r)
					}
					next := start(t, rdb, asterisk, fmt.Sprintf("standby-%d", r), nil)
					s.add(next)
					waitFor(t, defaults.Lease, "the standby seeing the leader process", func() bool {
						return next.metric(t, "presenced_leader_epoch") == float64(epoch)
					})

					time.Sleep(rand.N(defaults.RenewInterval)) // any moment of the leader's renewals
					killed := time.Now()
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					on := s.leads(t, next, killed, 2*defaults.Lease)
					took := on.at.Sub(killed)
					if bound := defaults.Lease + defaults.RenewInterval; took > bound {
						t.Errorf("run %d: the standby led %v after the kill; want at most %v", r, took, bound)
					}
					if on.epoch <= epoch {
						t.Errorf("run %d: the standby's epoch %d, not above the killed leader's %d", r, on.epoch, epoch)
					}
					mu.Lock()
					times = append(times, took)
					mu.Unlock()
					standby = next
				}
			})
		})
	}
	wg.Wait()
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	t.Logf("failover after kill -9 (lease %v, renew every %v), %d runs: min %s, median %s, mean %s, max %s",
		defaults.Lease, defaults.RenewInterval, len(times), ms(times[0]), ms(median(times)),
		ms(sum/time.Duration(len(times))), ms(times[len(times)-1]))
}

// median of sorted ds.
func median(ds []time.Duration) time.Duration {
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}
