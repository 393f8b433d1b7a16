package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// SentinelMaster is the name the lab's sentinels monitor the master by.
const SentinelMaster = "presenced"

// The lab Sentinel group's secrets: the master's and replica's requirepass (and masterauth),
// and the sentinels' own requirepass. Used when SentinelOptions ask for passwords.
const (
	SentinelRedisPassword = "lab-redis-secret"
	SentinelPassword      = "lab-sentinel-secret"
)

// SentinelOptions says how to start a Sentinel group.
type SentinelOptions struct {
	// Replicas is how many replicas the master has at the start. Zero means one.
	Replicas int
	// Passwords makes the master and the replicas require SentinelRedisPassword and the
	// sentinels SentinelPassword.
	Passwords bool
	// DownAfter is how long the master must not answer before the sentinels fail it over
	// (down-after-milliseconds). Zero means 1 s, for fast tests; Redis's default is 30 s.
	DownAfter time.Duration
	// ReplicationProxy routes the replica's replication link through a Proxy in the test
	// process (Sentinel.Replication; one replica only): SetHung(true) holds the replication stream back, so the
	// master acknowledges writes the replica does not get, and SetUp(false) then drops them,
	// as a network partition or a master dying with a replication backlog would. The
	// sentinels put a replica whose master address is not the master's back on the master
	// directly (+fix-slave-config) once failover-timeout (10 s here) has passed since they
	// first saw it: a test that holds the stream back later than that raises failover-timeout
	// first (SENTINEL SET <master> failover-timeout).
	ReplicationProxy bool
}

// Sentinel is a running Redis Sentinel group from the lab image: a master, its replicas and
// three sentinels (quorum 2), each in its own container. Debian's redis-server runs as a sentinel
// with --sentinel.
//
// Addresses. Sentinel gives its clients the master's address as the sentinels know it, the
// same address the replica and the sentinels themselves use. Published ports on 127.0.0.1 (as
// Start publishes the lone Redis) cannot serve both sides: announced as 127.0.0.1:<port>
// (replica-announce-ip, sentinel announce-ip), the master would be, inside every other
// container, that container itself. So the group runs on Docker's default bridge network and
// every address is a container's own address there, which the test process dials directly: a
// Linux Docker host routes to its bridge networks (docker0). StartSentinel checks that it can
// and fails saying so otherwise (Docker Desktop and rootless Docker do not route to them).
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master by (SentinelMaster).
	MasterName string
	// Addresses are the sentinels' host:port.
	Addresses []string
	// Password is the master's and replica's password, SentinelPassword the sentinels'; empty
	// without SentinelOptions.Passwords.
	Password, SentinelPassword string
	// Replication is the proxy on the replica's replication link; nil without
	// SentinelOptions.ReplicationProxy.
	Replication *Proxy
	// FirstMaster and FirstReplicas are the addresses of the master and its replicas at the
	// start.
	FirstMaster   string
	FirstReplicas []string

	nodes     map[string]*testcontainers.DockerContainer // master and replica, by address
	sentinels []*testcontainers.DockerContainer
}

// StartSentinel starts a Sentinel group and returns once every sentinel monitors the master,
// knows the replicas and the two other sentinels, so that a failover can happen.
func (e *Env) StartSentinel(ctx context.Context, opts SentinelOptions) (_ *Sentinel, err error) {
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.ReplicationProxy && opts.Replicas != 1 {
		return nil, errors.New("lab: a replication proxy needs exactly one replica")
	}
	s := &Sentinel{MasterName: SentinelMaster, nodes: map[string]*testcontainers.DockerContainer{}}
	if opts.Passwords {
		s.Password, s.SentinelPassword = SentinelRedisPassword, SentinelPassword
	}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()

	n := 1 + opts.Replicas
	servers := make([]*testcontainers.DockerContainer, n)
	addrs := make([]string, n)
	if err := parallel(n, func(i int) error {
		ctr, addr, err := e.startSentinelRedis(ctx, s.Password)
		servers[i], addrs[i] = ctr, addr
		return err
	}, func(i int) {
		if servers[i] != nil {
			s.nodes[addrs[i]] = servers[i]
		}
	}); err != nil {
		return nil, err
	}
	s.FirstMaster, s.FirstReplicas = addrs[0], addrs[1:]
	if err := s.reachable(ctx, s.FirstMaster); err != nil {
		return nil, err
	}
	if err := parallel(opts.Replicas, func(i int) error {
		return s.replicate(ctx, servers[1+i], addrs[1+i], opts.ReplicationProxy)
	}, func(int) {}); err != nil {
		return nil, err
	}

	conf := sentinelConf(s.MasterName, s.FirstMaster, opts.DownAfter, s.Password, s.SentinelPassword)
	sentinels := make([]*testcontainers.DockerContainer, 3)
	s.Addresses = make([]string, 3)
	if err := parallel(3, func(i int) error {
		ctr, err := testcontainers.Run(ctx, e.Image,
			testcontainers.WithLabels(map[string]string{ContainerLabel: "sentinel"}),
			testcontainers.WithEntrypoint("sh", "-c",
				`printf '%s\n' "$@" > /etc/redis-sentinel-lab.conf && exec redis-server /etc/redis-sentinel-lab.conf --sentinel`,
				"sh"),
			testcontainers.WithCmd(conf...),
			testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("+monitor master")),
		)
		sentinels[i] = ctr
		if err != nil {
			return fmt.Errorf("start sentinel container from %s: %w", e.Image, err)
		}
		ip, err := ctr.ContainerIP(ctx)
		if err != nil || ip == "" {
			return fmt.Errorf("sentinel container address: %q, %v", ip, err)
		}
		s.Addresses[i] = net.JoinHostPort(ip, "26379")
		return nil
	}, func(i int) {
		if sentinels[i] != nil {
			s.sentinels = append(s.sentinels, sentinels[i])
		}
	}); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// parallel runs start(0..n-1) at once, then keep(i) for each, and returns the first error.
func parallel(n int, start func(i int) error, keep func(i int)) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = start(i) })
	}
	wg.Wait()
	for i := range n {
		keep(i)
	}
	return errors.Join(errs...)
}

// startSentinelRedis starts a Redis server of the group (a master until told otherwise) and
// returns it with its address. masterauth lets it replicate from the other after a failover.
func (e *Env) startSentinelRedis(ctx context.Context, password string) (*testcontainers.DockerContainer, string, error) {
	// repl-diskless-sync-delay 0: a master starts a replica's full sync at once, rather than
	// waiting 5 s for more replicas to share it.
	cmd := []string{"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no",
		"--repl-diskless-sync-delay", "0"}
	if password != "" {
		cmd = append(cmd, "--requirepass", password, "--masterauth", password)
	}
	ctr, err := testcontainers.Run(ctx, e.Image,
		testcontainers.WithLabels(map[string]string{ContainerLabel: "sentinel-redis"}),
		testcontainers.WithCmd(cmd...),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForLog("Ready to accept connections")),
	)
	if err != nil {
		return ctr, "", fmt.Errorf("start redis container from %s: %w", e.Image, err)
	}
	ip, err := ctr.ContainerIP(ctx)
	if err != nil || ip == "" {
		return ctr, "", fmt.Errorf("redis container address: %q, %v", ip, err)
	}
	return ctr, net.JoinHostPort(ip, "6379"), nil
}

// reachable checks that the test process can talk to a container's own address.
func (s *Sentinel) reachable(ctx context.Context, addr string) error {
	c := s.Client(addr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("lab: the Sentinel group needs the test process to reach the containers' own addresses on Docker's bridge network "+
			"(a Linux Docker host routes to them; Docker Desktop and rootless Docker do not): ping %s: %w", addr, err)
	}
	return nil
}

// replicate makes the replica replicate from the master, directly or through a Proxy in the
// test process that it reaches at its network's gateway (the host's address on the bridge).
// Through the proxy the master sees the replica connect from the gateway, so the replica
// announces its own address (replica-announce-ip): the sentinels learn the replicas from the
// master, and must be given an address they can reach.
func (s *Sentinel) replicate(ctx context.Context, replica *testcontainers.DockerContainer, addr string, proxy bool) error {
	c := s.Client(addr)
	defer c.Close()
	host, port, _ := net.SplitHostPort(s.FirstMaster)
	if proxy {
		info, err := replica.Inspect(ctx)
		if err != nil {
			return fmt.Errorf("lab: inspect the replica: %w", err)
		}
		var gateway string
		for _, n := range info.NetworkSettings.Networks {
			if n.Gateway.IsValid() {
				gateway = n.Gateway.String()
			}
		}
		if gateway == "" {
			return errors.New("lab: the replica's network has no gateway for the replication proxy")
		}
		if s.Replication, err = newProxy(net.JoinHostPort(gateway, "0"), s.FirstMaster); err != nil {
			return err
		}
		replicaHost, _, _ := net.SplitHostPort(addr)
		if err := c.ConfigSet(ctx, "replica-announce-ip", replicaHost).Err(); err != nil {
			return fmt.Errorf("lab: replica-announce-ip: %w", err)
		}
		host, port, _ = net.SplitHostPort(s.Replication.Addr())
	}
	if err := c.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return fmt.Errorf("lab: replicaof %s:%s: %w", host, port, err)
	}
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: the replica did not sync with the master: %w (%v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sentinelConf is a sentinel's configuration, a line per argument.
func sentinelConf(master, masterAddr string, downAfter time.Duration, password, sentinelPassword string) []string {
	host, port, _ := net.SplitHostPort(masterAddr)
	conf := []string{
		"port 26379",
		"bind 0.0.0.0",
		"protected-mode no",
		"sentinel monitor " + master + " " + host + " " + port + " 2",
		"sentinel down-after-milliseconds " + master + " " + strconv.FormatInt(downAfter.Milliseconds(), 10),
		// A failover that stalls is retried after twice this; the replicas are reconfigured
		// within it. Redis's default is 3 minutes.
		"sentinel failover-timeout " + master + " 10000",
		"sentinel parallel-syncs " + master + " 1",
	}
	if password != "" {
		conf = append(conf, "sentinel auth-pass "+master+" "+password)
	}
	if sentinelPassword != "" {
		// The sentinels talk to each other with the same password.
		conf = append(conf, "requirepass "+sentinelPassword, "sentinel sentinel-pass "+sentinelPassword)
	}
	return conf
}

// waitReady waits until every sentinel knows the replicas (up and linked) and the two others.
func (s *Sentinel) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, addr := range s.Addresses {
		sc := s.SentinelClient(addr)
		var last string
		for {
			replicas, err := sc.Replicas(ctx, s.MasterName).Result()
			others, err2 := sc.Sentinels(ctx, s.MasterName).Result()
			if err = errors.Join(err, err2); err == nil {
				linked := 0
				for _, r := range replicas {
					if slices.Contains(s.FirstReplicas, net.JoinHostPort(r["ip"], r["port"])) && r["flags"] == "slave" &&
						r["master-link-status"] == "ok" {
						linked++
					}
				}
				if linked == len(s.FirstReplicas) && len(others) == 2 {
					break
				}
				last = fmt.Sprintf("replicas %v, other sentinels %d", replicas, len(others))
			} else {
				last = err.Error()
			}
			select {
			case <-ctx.Done():
				sc.Close()
				return fmt.Errorf("lab: sentinel %s not ready: %w (%s)", addr, ctx.Err(), last)
			case <-time.After(100 * time.Millisecond):
			}
		}
		sc.Close()
	}
	return nil
}

// Client is a client of the Redis server at addr (a master or a replica), with the group's
// password. Close it.
func (s *Sentinel) Client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.Password, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
}

// SentinelClient is a client of the sentinel at addr. Close it.
func (s *Sentinel) SentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.SentinelPassword, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
}

// MasterAddr is the master's address according to the first sentinel that answers.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range s.Addresses {
		sc := s.SentinelClient(addr)
		got, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		sc.Close()
		if err == nil && len(got) == 2 {
			return net.JoinHostPort(got[0], got[1]), nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %v %w", addr, got, err))
	}
	return "", fmt.Errorf("lab: master address: %w", errors.Join(errs...))
}

// WaitForFailover waits until every sentinel names a master other than old and that server
// says it is a master, and returns its address.
func (s *Sentinel) WaitForFailover(ctx context.Context, old string) (string, error) {
	var last string
	for {
		addr, ok := s.agreedMaster(ctx)
		if ok && addr != old {
			c := s.Client(addr)
			role, err := c.Do(ctx, "ROLE").Slice()
			c.Close()
			if err == nil && len(role) > 0 && role[0] == "master" {
				return addr, nil
			}
			last = fmt.Sprintf("%s: role %v, %v", addr, role, err)
		} else {
			last = fmt.Sprintf("sentinels agree: %v, on %s", ok, addr)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("lab: no failover from %s: %w (%s)", old, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// agreedMaster is the master every sentinel names, if they agree.
func (s *Sentinel) agreedMaster(ctx context.Context) (string, bool) {
	var agreed string
	for i, addr := range s.Addresses {
		sc := s.SentinelClient(addr)
		got, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		sc.Close()
		if err != nil || len(got) != 2 {
			return "", false
		}
		a := net.JoinHostPort(got[0], got[1])
		if i > 0 && a != agreed {
			return a, false
		}
		agreed = a
	}
	return agreed, true
}

// Pause freezes the Redis server at addr (docker pause): its connections stay open and
// nothing answers, as a hung or cut-off master.
func (s *Sentinel) Pause(ctx context.Context, addr string) error { return s.docker(ctx, "pause", addr) }

// Unpause lets a paused server run again; the sentinels then make an old master a replica.
func (s *Sentinel) Unpause(ctx context.Context, addr string) error {
	return s.docker(ctx, "unpause", addr)
}

// Kill kills the Redis server at addr (docker kill: SIGKILL); its address disappears.
func (s *Sentinel) Kill(ctx context.Context, addr string) error { return s.docker(ctx, "kill", addr) }

func (s *Sentinel) docker(ctx context.Context, verb, addr string) error {
	ctr, ok := s.nodes[addr]
	if !ok {
		return fmt.Errorf("lab: no redis server of the group at %s", addr)
	}
	out, err := exec.CommandContext(ctx, "docker", verb, ctr.GetContainerID()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: docker %s %s (%s): %w: %s", verb, ctr.GetContainerID(), addr, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close stops and removes the group's containers and its proxy.
func (s *Sentinel) Close(ctx context.Context) error {
	var errs []error
	if s.Replication != nil {
		s.Replication.Close()
	}
	for _, c := range s.sentinels {
		errs = append(errs, c.Terminate(ctx))
	}
	for addr, c := range s.nodes {
		// A paused container cannot be stopped; a killed one is removed all the same.
		_ = s.docker(ctx, "unpause", addr)
		errs = append(errs, c.Terminate(ctx))
	}
	return errors.Join(errs...)
}
