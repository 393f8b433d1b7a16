// Package lab starts the presenced test lab: a real Asterisk 22 (Debian's packages, in an image
// built locally by testdata/lab/build.sh) and a real Redis, as containers managed by
// testcontainers-go. Integration tests of a package share one lab started from TestMain:
//
//	var env *lab.Env
//
//	func TestMain(m *testing.M) {
//		os.Exit(lab.Main(m, lab.Options{Asterisk: true, Redis: true}, func(e *lab.Env) { env = e }))
//	}
//
// Tests isolate themselves by unique names (astdb families, member interfaces, globals).
// There is no skipping: when Docker or the images are not there and cannot be built, Main
// fails the package.
package lab

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Credentials the lab configuration (testdata/asterisk/conf) defines.
const (
	// AMIUser is the daemon's least-privilege AMI user.
	AMIUser = "presenced"
	// AMISecret is AMIUser's secret.
	AMISecret = "presenced-secret"
	// AMITestUser is an AMI user allowed everything, Command included; tests only.
	AMITestUser = "labtest"
	// AMITestSecret is AMITestUser's secret.
	AMITestSecret = "labtest-secret"
	// ARIUser is the daemon's ARI user.
	ARIUser = "presenced"
	// ARIPassword is ARIUser's password.
	ARIPassword = "presenced-secret"
	// AsteriskConf is the asterisk.conf the lab Asterisk runs with, inside its container.
	AsteriskConf = "/etc/asterisk-lab/asterisk.conf"
	// QueuesConf is the lab Asterisk's queues.conf, inside its container.
	QueuesConf = "/etc/asterisk-lab/queues.conf"
	// ContainerLabel marks the lab's containers, so leftovers of a killed test run can be found
	// (docker ps --filter label=presenced.lab).
	ContainerLabel = "presenced.lab"
)

// Options says which parts of the lab to start.
type Options struct {
	Asterisk bool
	Redis    bool
	// Radicale starts the lab CalDAV server (testdata/radicale; see radicale.go).
	Radicale bool
	// StartTimeout bounds building the images (when missing) and starting the containers.
	// Zero means 20 minutes: a fresh machine builds the base image from Debian's packages.
	StartTimeout time.Duration
}

// Env is a running lab. The zero value of a field means that part was not started.
type Env struct {
	// AMIAddr is host:port of the Asterisk Manager Interface on 127.0.0.1.
	AMIAddr string
	// ARIURL is the ARI base URL, e.g. http://127.0.0.1:32768/ari.
	ARIURL string
	// HTTPAddr is host:port of Asterisk's HTTP server (ARI, websocket).
	HTTPAddr string
	// RedisURL is a redis:// URL of the lab Redis.
	RedisURL string
	// Image is the lab Asterisk image the container runs.
	Image string

	AMIUser, AMISecret         string
	AMITestUser, AMITestSecret string
	ARIUser, ARIPassword       string

	// RadicaleURL is the base URL of the lab CalDAV server, e.g. http://127.0.0.1:32770/.
	RadicaleURL string

	// AMIDirectAddr and RedisDirectURL reach the same servers at their containers' own
	// addresses on Docker's bridge network, which the host routes to without Docker's
	// userland port proxy (a process copying every byte between two sockets). Empty when a
	// container has no such address. The benchmarks use them on request (-bench.direct in
	// internal/bench): presenced deployed beside Asterisk talks to it without that proxy.
	AMIDirectAddr, RedisDirectURL string

	asterisk *testcontainers.DockerContainer
	redis    *testcontainers.DockerContainer
	radicale *testcontainers.DockerContainer
}

// Main starts the lab, hands it to set, runs the tests and stops the lab. It returns the exit
// code for os.Exit. A lab that cannot start fails the package with the reason on stderr.
//
// A run of a fuzz target (go test -fuzz, and each fuzz worker it starts, which runs TestMain
// too) starts no lab and does not call set: the fuzz targets of the packages that use Main
// need none (a fuzz target that does must use Lazy), and a lab per worker would cost a minute
// each and outlive the workers the fuzzing engine stops.
func Main(m *testing.M, opts Options, set func(*Env)) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if fuzzing(flag.CommandLine) {
		return m.Run()
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 20 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	env, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: cannot start the test lab (integration tests need Docker and the lab images): %v\n", err)
		return 1
	}
	set(env)
	code := m.Run()
	if code != 0 && env.asterisk != nil {
		env.dumpAsteriskLog()
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	if err := env.Close(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "lab: stop: %v\n", err)
	}
	return code
}

// Start builds the images when missing and starts the parts opts names.
func Start(ctx context.Context, opts Options) (*Env, error) {
	// The reaper image cannot be pulled here; containers are removed by Close instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	image, err := BuildImage(ctx)
	if err != nil {
		return nil, err
	}
	env := &Env{
		Image:         image,
		AMIUser:       AMIUser,
		AMISecret:     AMISecret,
		AMITestUser:   AMITestUser,
		AMITestSecret: AMITestSecret,
		ARIUser:       ARIUser,
		ARIPassword:   ARIPassword,
	}
	if opts.Asterisk {
		if err := env.startAsterisk(ctx); err != nil {
			env.Close(context.Background())
			return nil, err
		}
	}
	if opts.Redis {
		if err := env.startRedis(ctx); err != nil {
			env.Close(context.Background())
			return nil, err
		}
	}
	if opts.Radicale {
		if err := env.startRadicale(ctx); err != nil {
			env.Close(context.Background())
			return nil, err
		}
	}
	return env, nil
}

// BuildImage runs testdata/lab/build.sh, which builds the base and lab images when they are
// missing, and returns the lab image's ID. The ID, not the tag: a build in another checkout on
// the same machine drops the tags of other builds (build.sh), which would leave the containers a
// test starts later (Sentinel groups, restarts) naming an image Docker no longer knows by that
// name; the image itself stays while a container or another tag holds it. A tag dropped between
// the build and its inspection is built (tagged) again.
func BuildImage(ctx context.Context) (string, error) {
	script := filepath.Join(RepoRoot(), "testdata", "lab", "build.sh")
	var err error
	for range 3 {
		cmd := exec.CommandContext(ctx, "bash", script)
		var stdout, stderr bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("build lab image (%s): %w\n%s", script, err, lastLines(stderr.String(), 30))
		}
		lines := strings.Fields(stdout.String())
		if len(lines) == 0 {
			return "", fmt.Errorf("build lab image (%s): printed no image name", script)
		}
		ref := lines[len(lines)-1]
		out, ierr := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{.Id}}", ref).Output()
		if ierr == nil {
			return strings.TrimSpace(string(out)), nil
		}
		err = fmt.Errorf("build lab image: inspect %s: %w", ref, ierr)
	}
	return "", err
}

// RepoRoot is the root of the presenced source tree this package was compiled from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func (e *Env) startAsterisk(ctx context.Context) error {
	ctr, err := testcontainers.Run(ctx, e.Image,
		testcontainers.WithLabels(map[string]string{ContainerLabel: "asterisk"}),
		testcontainers.WithExposedPorts("5038/tcp", "8088/tcp", "5060/udp"),
		testcontainers.WithHostConfigModifier(loopbackOnly("5038/tcp", "8088/tcp", "5060/udp")),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
			wait.ForExec([]string{"asterisk", "-C", AsteriskConf, "-rx", "core waitfullybooted"}).
				WithPollInterval(200*time.Millisecond)),
	)
	if ctr != nil {
		e.asterisk = ctr
	}
	if err != nil {
		return fmt.Errorf("start asterisk container from %s: %w", e.Image, err)
	}
	if e.AMIAddr, err = loopbackEndpoint(ctx, ctr, "5038/tcp"); err != nil {
		return fmt.Errorf("asterisk AMI port: %w", err)
	}
	if e.HTTPAddr, err = loopbackEndpoint(ctx, ctr, "8088/tcp"); err != nil {
		return fmt.Errorf("asterisk HTTP port: %w", err)
	}
	e.ARIURL = "http://" + e.HTTPAddr + "/ari"
	if ip, err := ctr.ContainerIP(ctx); err == nil && ip != "" {
		e.AMIDirectAddr = net.JoinHostPort(ip, "5038")
	}
	return nil
}

func (e *Env) startRedis(ctx context.Context) error {
	ctr, err := testcontainers.Run(ctx, e.Image,
		testcontainers.WithLabels(map[string]string{ContainerLabel: "redis"}),
		// The absolute path and DEBUG from inside the container let RestartRedis restart it.
		testcontainers.WithCmd("/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no",
			"--save", "", "--appendonly", "no", "--enable-debug-command", "local"),
		testcontainers.WithExposedPorts("6379/tcp"),
		testcontainers.WithHostConfigModifier(loopbackOnly("6379/tcp")),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("Ready to accept connections")),
	)
	if ctr != nil {
		e.redis = ctr
	}
	if err != nil {
		return fmt.Errorf("start redis container from %s: %w", e.Image, err)
	}
	addr, err := loopbackEndpoint(ctx, ctr, "6379/tcp")
	if err != nil {
		return fmt.Errorf("redis port: %w", err)
	}
	e.RedisURL = "redis://" + addr + "/0"
	if ip, err := ctr.ContainerIP(ctx); err == nil && ip != "" {
		e.RedisDirectURL = "redis://" + net.JoinHostPort(ip, "6379") + "/0"
	}
	return nil
}

// RestartRedis restarts the lab Redis in place (DEBUG RESTART: the same process image and port,
// a new run): it loses every key, as a Redis without persistence does, and every connection
// is cut. It returns once Redis answers again.
func (e *Env) RestartRedis(ctx context.Context) error {
	if e.redis == nil {
		return errors.New("lab: redis is not running")
	}
	// The connection that sends DEBUG RESTART is cut by the restart: its error says nothing.
	_, _, _ = e.redis.Exec(ctx, []string{"redis-cli", "DEBUG", "RESTART"}, tcexec.Multiplexed())
	for {
		code, out, err := e.redis.Exec(ctx, []string{"redis-cli", "PING"}, tcexec.Multiplexed())
		if err == nil && code == 0 {
			if b, _ := io.ReadAll(out); strings.TrimSpace(string(b)) == "PONG" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: redis does not answer after DEBUG RESTART: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// loopbackOnly publishes the ports on 127.0.0.1 only, on ports Docker picks.
func loopbackOnly(ports ...string) func(*container.HostConfig) {
	return func(hc *container.HostConfig) {
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		for _, p := range ports {
			hc.PortBindings[network.MustParsePort(p)] = []network.PortBinding{
				{HostIP: netip.MustParseAddr("127.0.0.1")},
			}
		}
	}
}

// loopbackEndpoint is 127.0.0.1:<mapped port>, the only address loopbackOnly publishes on
// (whatever daemon host name testcontainers would report).
func loopbackEndpoint(ctx context.Context, ctr *testcontainers.DockerContainer, port string) (string, error) {
	p, err := ctr.MappedPort(ctx, port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", p.Port()), nil
}

// CLI runs an Asterisk CLI command in the lab container (asterisk -rx) and returns its output.
func (e *Env) CLI(ctx context.Context, command string) (string, error) {
	if e.asterisk == nil {
		return "", errors.New("lab: asterisk is not running")
	}
	code, out, err := e.asterisk.Exec(ctx, []string{"asterisk", "-C", AsteriskConf, "-rx", command}, tcexec.Multiplexed())
	if err != nil {
		return "", fmt.Errorf("lab: asterisk -rx %q: %w", command, err)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		return "", fmt.Errorf("lab: asterisk -rx %q: read output: %w", command, err)
	}
	if code != 0 {
		return string(b), fmt.Errorf("lab: asterisk -rx %q: exit code %d: %s", command, code, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// WaitFullyBooted blocks until Asterisk's control socket answers and Asterisk is fully booted,
// e.g. after "core restart now".
func (e *Env) WaitFullyBooted(ctx context.Context) error {
	for {
		if _, err := e.CLI(ctx, "core waitfullybooted"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: asterisk not fully booted: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AsteriskLog returns what Asterisk printed on its console so far.
func (e *Env) AsteriskLog(ctx context.Context) (string, error) {
	if e.asterisk == nil {
		return "", errors.New("lab: asterisk is not running")
	}
	rc, err := e.asterisk.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("lab: asterisk logs: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func (e *Env) dumpAsteriskLog() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if log, err := e.AsteriskLog(ctx); err == nil {
		fmt.Fprintf(os.Stderr, "lab: last lines of the Asterisk console:\n%s\n", lastLines(log, 60))
	}
}

// Close stops and removes the lab's containers.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	for _, c := range []*testcontainers.DockerContainer{e.asterisk, e.redis, e.radicale} {
		if c != nil {
			if err := c.Terminate(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fuzzing reports whether the test binary's flags in fs run a fuzz target: -test.fuzz names
// one, or the binary is one of the fuzzing engine's workers (-test.fuzzworker).
func fuzzing(fs *flag.FlagSet) bool {
	if f := fs.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return true
	}
	w := fs.Lookup("test.fuzzworker")
	return w != nil && w.Value.String() == "true"
}
