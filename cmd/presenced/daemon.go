package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/api"
	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/callstate"
	"github.com/presenced/presenced/internal/httpserve"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/missedcalls"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/queue"
	"github.com/presenced/presenced/trigger"
	"github.com/presenced/presenced/web"
	"github.com/presenced/presenced/webhook"
)

// appVariable is the global variable through which the shipped dialplan learns the Stasis
// application of the presenced instance in charge (deploy/asterisk/extensions_presenced.conf).
const appVariable = "PRESENCED_APP"

// authFailureKeyPrefix starts the Redis keys counting failed API authentications per client
// address (internal/throttle).
const authFailureKeyPrefix = "presenced:authfail:"

// daemon is one running presenced: its connections, store and HTTP listener.
type daemon struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	ami     *ami.Client // changes and events
	amiRead *ami.Client // bulk reads of the PBX
	// amiWrite are the further sessions queue changes are spread over
	// (asterisk.ami.write_sessions), gated like ami.
	amiWrite []*ami.Client
	// amiChanges, when asterisk.ami.write_sessions is 2 or more, is one more session, gated
	// like ami, for the astdb and lamp changes alone (nil: they go over ami).
	amiChanges *ami.Client
	ari        *ari.Client
	store      *presence.Redis
	states     *presence.StateStore
	engine     *presence.Engine
	api        *api.Handler
	web        *web.Handler
	acc        *account.Service
	fc         *featurecode.App
	trig       *trigger.Scheduler
	missed     *missedcalls.Watcher // unanswered_calls; counts nothing while it is off
	cal        *calendar.Connector  // users' calendars; runs on the leader, like the triggers
	devices    *callstate.Phones    // the users' phones' states, for who is on a call
	elector    *leader.Elector
	// certs is the HTTP listener's certificate with http.tls; nil without. It reads its files
	// again when they change; Reload reads them now.
	certs *httpserve.CertFiles

	resyncs prometheus.Counter

	// location is the zone of users without their own (triggers.default_time_zone).
	location *time.Location
	// reloadMu serialises reloads; applied is the configuration last put in force (the one
	// started with, or the last reload's), which cfg's connection settings stay at.
	reloadMu sync.Mutex
	applied  Config
	// toldReady is set once systemd was told READY=1: from then on a reload is bracketed by
	// RELOADING=1 and READY=1 (before, systemd still waits for the start to finish).
	toldReady atomic.Bool
	reloads   *reloadMetrics
}

// run starts presenced and blocks until ctx is cancelled, then shuts down within
// cfg.ShutdownTimeout. started, when not nil, is told the HTTP listener's address and the
// registry of the metrics served on /metrics.
func run(ctx context.Context, cfg Config, log *slog.Logger, started func(httpAddr string, reg *prometheus.Registry)) error {
	d := &daemon{cfg: cfg, applied: cfg, log: log, reg: prometheus.NewRegistry()}
	d.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bi := readBuildInfo()
	promauto.With(d.reg).NewGauge(prometheus.GaugeOpts{
		Name:        "presenced_build_info",
		Help:        "Always 1; the labels say which presenced runs: its version, the VCS revision it was built from and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion},
	}).Set(1)
	d.reloads = newReloadMetrics(d.reg)
	d.resyncs = promauto.With(d.reg).NewCounter(prometheus.CounterOpts{
		Name: "presenced_asterisk_resyncs_total",
		Help: "Times Asterisk became ready (AMI logged in, fully booted) and presenced resynchronised with it.",
	})

	var err error
	d.ari, err = ari.New(ari.Config{
		URL:            cfg.Asterisk.ARI.URL,
		Username:       cfg.Asterisk.ARI.Username,
		Password:       string(cfg.Asterisk.ARI.Password),
		App:            cfg.Asterisk.ARI.App,
		InstanceID:     cfg.InstanceID,
		RequestTimeout: cfg.Asterisk.ARI.RequestTimeout,
		MaxConnections: cfg.Asterisk.ARI.MaxConnections,
		Logger:         log,
		Registerer:     d.reg,
	})
	if err != nil {
		return fmt.Errorf("ari: %w", err)
	}
	// Two AMI sessions: the main one carries changes and the events, the read one the bulk
	// reads of the PBX. Asterisk serves one session's actions one at a time, so a large list
	// on the main session would hold up the changes queued behind it.
	amiConfig := func(role string) ami.Config {
		return ami.Config{
			Addr:         cfg.Asterisk.AMI.Address,
			Username:     cfg.Asterisk.AMI.Username,
			Secret:       string(cfg.Asterisk.AMI.Secret),
			Events:       cfg.Asterisk.AMI.Events,
			DialTimeout:  cfg.Asterisk.AMI.DialTimeout,
			PingInterval: cfg.Asterisk.AMI.PingInterval,
			BackoffMax:   cfg.Asterisk.AMI.BackoffMax,
			Logger:       log.With("connection", role),
			Registerer:   prometheus.WrapRegistererWith(prometheus.Labels{"connection": role}, d.reg),
			Dial:         cfg.amiDial,
		}
	}
	mainCfg := amiConfig("main")
	mainCfg.OnReady = d.asteriskReady
	// The main session is the one that writes to Asterisk: only the leader may, and it stops
	// before its lease can expire (package leader). The read session only reads.
	mainCfg.Gate = func() error {
		if _, ok := d.elector.Leading(); !ok {
			return errNotLeader
		}
		return nil
	}
	if d.ami, err = ami.New(mainCfg); err != nil {
		return fmt.Errorf("ami: %w", err)
	}
	// A further write session: gated like the main one, FullyBooted its only event.
	gated := func(role string) (*ami.Client, error) {
		wc := amiConfig(role)
		wc.Events = "system"
		wc.Gate = mainCfg.Gate
		c, err := ami.New(wc)
		if err != nil {
			return nil, fmt.Errorf("ami: %w", err)
		}
		return c, nil
	}
	for i := 2; i <= cfg.Asterisk.AMI.WriteSessions; i++ {
		c, err := gated(fmt.Sprintf("write%d", i))
		if err != nil {
			return err
		}
		d.amiWrite = append(d.amiWrite, c)
	}
	if cfg.Asterisk.AMI.WriteSessions >= 2 {
		// The astdb and lamp changes (a fraction of a millisecond each to Asterisk) over a
		// session of their own: Asterisk serves a session's actions one after the other, so
		// behind the queue changes of a mass switch (each rewriting a queue's member list) they
		// waited in line, and every switch with them; on the main session their replies wait
		// behind its events.
		if d.amiChanges, err = gated("changes"); err != nil {
			return err
		}
	}
	readCfg := amiConfig("read")
	readCfg.Events = "system" // FullyBooted only: the main session receives the events
	if d.amiRead, err = ami.New(readCfg); err != nil {
		return fmt.Errorf("ami: %w", err)
	}

	storeOpts := storeOptions(cfg, log, d.reg)
	if cfg.Redis.embedded() {
		log.Warn("neither redis.url nor redis.sentinel configured: using the embedded in-process store; fine for a single instance, use Redis for several",
			"snapshot_path", cfg.Store.SnapshotPath, "snapshot_interval", cfg.Store.SnapshotInterval)
	}
	d.store, err = presence.OpenRedis(ctx, storeOpts)
	if err != nil {
		return err
	}

	if err := d.buildEngine(); err != nil {
		d.store.Close(context.Background())
		return err
	}
	promauto.With(d.reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "presenced_ready",
		Help: "1 when /readyz would answer 200 (AMI logged in to a fully booted Asterisk, ARI connected, the store answering with presenced's schema), else 0; read at scrape time.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if d.readiness(ctx).Ready {
			return 1
		}
		return 0
	})

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		d.store.Close(context.Background())
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP.Listen, err)
	}
	limits := cfg.HTTP.limits(cfg.API.MaxBodyBytes)
	if t := cfg.HTTP.TLS; t.enabled() {
		if d.certs, err = httpserve.LoadCertFiles(t.CertFile, t.KeyFile, log.With("component", "http")); err != nil {
			ln.Close()
			d.store.Close(context.Background())
			return fmt.Errorf("http.tls: %w", err)
		}
		limits.TLS = d.certs.TLSConfig()
	}
	hs := httpserve.New(limits, ln, d.routes(), log.With("component", "http"), d.reg)
	log.Info("presenced starting", "version", version, "revision", bi.Revision, "instance", cfg.InstanceID, "http", ln.Addr().String(),
		"tls", d.certs != nil,
		"ami", cfg.Asterisk.AMI.Address, "ari", cfg.Asterisk.ARI.URL, "stasis_app", d.ari.AppName(),
		"store", cfg.Redis.kind())

	// The components run until the shutdown's engine stage stops them, not until ctx ends: the
	// HTTP requests that the HTTP stage lets finish still reach Asterisk.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 6+len(d.amiWrite))
	wg.Go(func() {
		if err := d.ami.Run(runCtx); err != nil {
			errc <- fmt.Errorf("ami: %w", err)
		}
	})
	wg.Go(func() {
		if err := d.amiRead.Run(runCtx); err != nil {
			errc <- fmt.Errorf("ami (read connection): %w", err)
		}
	})
	for _, g := range d.gatedSessions() {
		wg.Go(func() {
			if err := g.c.Run(runCtx); err != nil {
				errc <- fmt.Errorf("ami (%s): %w", g.name, err)
			}
		})
	}
	wg.Go(func() {
		if err := d.ari.Run(runCtx); err != nil {
			errc <- fmt.Errorf("ari: %w", err)
		}
	})
	wg.Go(func() { d.fc.Run(runCtx, d.ari.Events()) })
	wg.Go(func() {
		if err := d.elector.Run(runCtx); err != nil {
			errc <- fmt.Errorf("leader election: %w", err)
		}
	})
	wg.Go(func() { d.states.WatchSchema(runCtx) })
	if cfg.reloadSignals != nil {
		wg.Go(func() { d.reloadOnSignal(runCtx, cfg.reloadSignals) })
	}
	wg.Go(func() { d.web.Run(runCtx) })
	hs.RegisterOnShutdown(d.web.Shutdown) // the event streams end; the HTTP stage does not wait for them
	wg.Go(func() {
		if err := hs.Serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	wg.Go(func() { d.superviseService(runCtx, cfg.service, selfURL(cfg, ln.Addr().String(), "/healthz")) })
	if started != nil {
		started(ln.Addr().String(), d.reg)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case runErr = <-errc:
		log.Error("a component failed, shutting down", "err", runErr)
	}
	d.sendNotify(cfg.service, "STOPPING=1", "STATUS=shutting down")
	return errors.Join(runErr, d.shutdown(cancel, hs, &wg))
}

// storeOptions are the state store's options of the configuration; reg may be nil.
func storeOptions(cfg Config, log *slog.Logger, reg prometheus.Registerer) presence.RedisOptions {
	storeOpts := presence.RedisOptions{
		URL:          string(cfg.Redis.URL),
		Username:     cfg.Redis.Username,
		Password:     string(cfg.Redis.Password),
		DialTimeout:  cfg.Redis.DialTimeout,
		ReadTimeout:  cfg.Redis.ReadTimeout,
		WriteTimeout: cfg.Redis.WriteTimeout,
		Logger:       log.With("component", "store"),
		Registerer:   reg,
	}
	if s := cfg.Redis.Sentinel; s.enabled() {
		storeOpts.Sentinel = &presence.SentinelOptions{MasterName: s.MasterName, Addresses: s.Addresses,
			Username: s.Username, Password: string(s.Password), DB: cfg.Redis.DB}
		storeOpts.WaitReplicas, storeOpts.WaitTimeout = s.WaitReplicas, s.WaitTimeout
	}
	if cfg.Redis.embedded() {
		storeOpts.SnapshotPath = cfg.Store.SnapshotPath
		storeOpts.SnapshotInterval = cfg.Store.SnapshotInterval
		storeOpts.SnapshotTimeout = cfg.Store.SnapshotTimeout
	}
	return storeOpts
}

// buildEngine makes the switching engine over the concerns that act on Asterisk, and the API.
func (d *daemon) buildEngine() error {
	cfg, log := d.cfg, d.log
	qc, err := queue.New(queue.Options{AMI: d.ami, Reader: d.amiRead, Writers: d.amiWrite, Logger: log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	// The astdb and lamp changes go over their own session when there is one (nil: the main).
	dc, err := astdb.New(astdb.Options{AMI: d.ami, Reader: d.amiRead, Writer: d.amiChanges, Logger: log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("followme: %w", err)
	}
	bc, err := blf.New(blf.Options{AMI: d.ami, Reader: d.amiRead, Writer: d.amiChanges, Logger: log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("blf: %w", err)
	}
	wc, err := webhook.New(webhook.Options{Logger: log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	d.elector, err = leader.New(leader.Options{
		// With Sentinel, the lease is taken and renewed only once replicas hold it (WAIT).
		Redis: d.store.Client(), Confirm: d.store.Confirmed, Asterisk: cfg.Asterisk.ID, Instance: cfg.InstanceID,
		Lease: cfg.Leader.Lease, RenewInterval: cfg.Leader.RenewInterval, ClockDriftMargin: cfg.Leader.ClockDriftMargin,
		OnStartedLeading: d.lead, Logger: log, Registerer: d.reg,
	})
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	// The engine's writes to Redis are fenced by the lease: a leader that lost it cannot
	// overwrite what the next one writes.
	fence := func() (presence.Fence, bool) {
		f, ok := d.elector.Fence()
		return presence.Fence{Key: f.Key, Value: f.Value}, ok
	}
	d.states = d.store.StateStore(presence.StateStoreOptions{
		Logger: log.With("component", "store"), Registerer: d.reg, Fence: fence})
	d.devices = callstate.New(d.ami, d.amiRead, phonesOf(cfg.catalog))
	// Every instance serves the whole API: what a standby is asked to do, the leader does.
	relay, err := presence.NewRelay(presence.RelayOptions{
		Redis: d.store.Client(), Confirm: d.store.Confirmed, Asterisk: cfg.Asterisk.ID, Instance: cfg.InstanceID,
		LeaderExists: func(ctx context.Context) (bool, error) {
			_, _, err := d.elector.Leader(ctx)
			if errors.Is(err, leader.ErrNoLeader) {
				return false, nil
			}
			return err == nil, err
		},
		Logger: log.With("component", "relay"),
	})
	if err != nil {
		return err
	}
	d.engine, err = presence.NewEngine(presence.EngineOptions{
		Catalog:       cfg.catalog,
		Naming:        cfg.Asterisk.Naming,
		States:        d.states,
		Concerns:      []presence.Concern{qc, dc, bc, wc},
		Watchers:      []presence.Watcher{qc, dc, bc, d.devices},
		CheckInterval: cfg.Reconcile.Interval,
		Globals:       map[string]string{appVariable: d.ari.AppName()},
		Relay:         relay,
		Policies:      cfg.Reconcile.Policy.Policies(),
		DNDKey:        cfg.DNDKey.options(cfg.FeatureCodes.DefaultProfile),
		Devices:       d.devices,
		// A user removed by a reload takes their triggers and own schedule into the archive.
		ArchiveKeys: func(id presence.UserID) []string { return d.trig.UserKeys(id) },
		RoundTrips: func() uint64 {
			n := d.ami.ActionsSent() + d.amiRead.ActionsSent()
			for _, g := range d.gatedSessions() {
				n += g.c.ActionsSent()
			}
			return n
		},
		Logger:     log.With("component", "engine"),
		Registerer: d.reg,
	})
	if err != nil {
		return err
	}
	loc := time.Local
	if cfg.Triggers.DefaultTimeZone != "" {
		if loc, err = time.LoadLocation(cfg.Triggers.DefaultTimeZone); err != nil {
			return fmt.Errorf("triggers.default_time_zone: %w", err)
		}
	}
	d.location = loc
	d.trig, err = trigger.New(trigger.Options{
		Engine:          d.engine,
		States:          d.states,
		Redis:           d.store.Client(),
		Schedules:       cfg.Schedules,
		Holidays:        cfg.Holidays,
		DefaultLocation: loc,
		Tick:            cfg.Triggers.Tick,
		// An external trigger whose end never comes ends at its max_duration.
		ExternalMaxDuration: cfg.Triggers.ExternalMaxDuration,
		Logger:              log.With("component", "trigger"),
		Registerer:          d.reg,
	})
	if err != nil {
		return fmt.Errorf("triggers: %w", err)
	}
	// Registered whether or not unanswered calls switch anybody: dashboards find them.
	missedMetrics, err := missedcalls.NewMetrics(d.reg)
	if err != nil {
		return err
	}
	// The watcher follows queue events also while unanswered_calls is off: a reload may turn it on.
	d.missed, err = missedcalls.New(missedcalls.Options{Metrics: missedMetrics,
		AMI: d.ami, Redis: d.store.Client(), Prefix: "presenced:", Engine: d.engine, Naming: cfg.Asterisk.Naming,
		Rules: cfg.UnansweredCalls.rules(),
		Switch: func(ctx context.Context, id presence.UserID, actor, profile string) (bool, string, error) {
			res, err := d.trig.Point(ctx, id, actor, presence.SourceUnanswered, profile)
			if err != nil {
				return false, "", err
			}
			return res.Switched, res.Reason, nil
		},
		Timeout: cfg.Redis.ReadTimeout,
		Logger:  log,
	})
	if err != nil {
		return fmt.Errorf("unanswered_calls: %w", err)
	}
	d.cal, err = calendar.New(calendar.Options{
		Catalog:         cfg.catalog,
		Triggers:        d.trig,
		Redis:           d.store.Client(),
		Rules:           cfg.Calendar.Rules,
		PollInterval:    cfg.Calendar.PollInterval,
		Horizon:         cfg.Calendar.Horizon,
		DefaultLocation: loc,
		Tick:            cfg.Triggers.Tick,
		Logger:          log.With("component", "calendar"),
		Registerer:      d.reg,
	})
	if err != nil {
		return fmt.Errorf("calendar: %w", err)
	}
	// Failed authentications are counted in Redis, shared by every instance serving the API.
	limiter, err := throttle.New(throttle.Options{
		Redis:      d.store.Client(),
		KeyPrefix:  authFailureKeyPrefix,
		Failures:   cfg.API.Throttle.Failures,
		Window:     cfg.API.Throttle.Window,
		Block:      cfg.API.Throttle.Block,
		MaxKeys:    cfg.API.Throttle.MaxAddresses,
		Timeout:    cfg.Redis.ReadTimeout,
		Logger:     log.With("component", "api"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"limiter": "api"}, d.reg),
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	d.acc, err = account.New(account.Options{
		Redis:          d.store.Client(),
		Catalog:        cfg.catalog,
		AdminToken:     string(cfg.API.AdminToken),
		AdminTokenHash: cfg.API.AdminTokenHash,
		IdleTimeout:    cfg.Web.SessionIdle,
		MaxAge:         cfg.Web.SessionMax,
		Attempts:       cfg.Web.PasswordAttempts,
		Lockout:        cfg.Web.Lockout,
		Logger:         log.With("component", "account"),
	})
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	d.web, err = web.New(web.Options{
		Engine:         d.engine,
		States:         d.states,
		Accounts:       d.acc,
		Triggers:       d.trig,
		Calendars:      d.cal,
		Location:       loc,
		TrustedProxies: cfg.trustedProxies(),
		Throttle:       limiter,
		Health:         d.health,
		MaxStreams:     cfg.HTTP.eventStreams(),
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	d.api, err = api.New(api.Options{
		Engine:         d.engine,
		Triggers:       d.trig,
		Calendars:      d.cal,
		Accounts:       d.acc,
		Events:         d.web.Stream,
		Instance:       d.instance,
		AdminToken:     string(cfg.API.AdminToken),
		AdminTokenHash: cfg.API.AdminTokenHash,
		Throttle:       limiter,
		TrustedProxies: cfg.trustedProxies(),
		MaxBodyBytes:   cfg.API.MaxBodyBytes,
		Logger:         log, // api adds component=api
		Version:        version,
		Registerer:     d.reg,
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	d.fc, err = featurecode.New(featurecode.Options{
		Channels:          d.ari,
		Engine:            d.engine,
		States:            d.states,
		Redis:             d.store.Client(),
		DefaultProfile:    cfg.FeatureCodes.DefaultProfile,
		AlwaysPIN:         cfg.FeatureCodes.AlwaysPIN,
		PINAttempts:       cfg.FeatureCodes.PINAttempts,
		Lockout:           cfg.FeatureCodes.Lockout,
		FirstDigitTimeout: cfg.FeatureCodes.FirstDigitTimeout,
		DigitTimeout:      cfg.FeatureCodes.DigitTimeout,
		TrustedContexts:   cfg.FeatureCodes.TrustedContexts,
		RequestTimeout:    cfg.Asterisk.ARI.RequestTimeout,
		Observe:           cfg.observeFeatureCode,
		Logger:            log.With("component", "featurecode"),
		Registerer:        d.reg,
	})
	if err != nil {
		return err
	}
	log.Info("profiles loaded", "users", len(cfg.catalog.Users), "system_profiles", len(cfg.catalog.Profiles))
	return nil
}

// shutdown stops presenced within shutdown_timeout, in three stages, each on a deadline of
// its own, so that a stage that overruns cannot eat into the next:
//
//  1. HTTP (http.shutdown_timeout): no new connections; the requests in progress may finish;
//     then every connection still open is closed, so no slow client can hold the shutdown.
//  2. engine (what the other two stages leave of shutdown_timeout): the connections to
//     Asterisk, the triggers, the feature codes and the PBX watcher stop, the HTTP handlers
//     still running return, the pending repairs stop.
//  3. store (store.snapshot_timeout): the embedded store's final snapshot, last, on a fresh
//     deadline: it holds every switch that was acknowledged, however slow a client or a
//     stage before it was.
//
// A client cut off in stage 1 is no error; a stage that overruns its budget is, but the
// stages after it still run.
func (d *daemon) shutdown(cancel context.CancelFunc, hs *httpserve.Server, wg *sync.WaitGroup) error {
	start := time.Now()
	var errs []error

	stage, budget := time.Now(), d.cfg.HTTP.ShutdownTimeout
	ctx, done := context.WithTimeout(context.Background(), budget)
	forced, err := hs.Stop(ctx)
	done()
	if err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if forced > 0 {
		d.log.Warn("shutdown: requests still in progress after http.shutdown_timeout; their connections closed",
			"connections", forced, "budget", budget)
	}
	d.log.Info("shutdown: HTTP stopped", "took", time.Since(stage).Round(time.Millisecond), "budget", budget,
		"connections_closed", forced)

	stage, budget = time.Now(), d.cfg.engineShutdownBudget()
	ctx, done = context.WithTimeout(context.Background(), budget)
	cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		wg.Wait()    // AMI, ARI, triggers, feature codes, the engine, the HTTP listener
		hs.Wait(ctx) // handlers whose connection stage 1 closed
	}()
	select {
	case <-stopped:
		d.log.Info("shutdown: engine stopped", "took", time.Since(stage).Round(time.Millisecond), "budget", budget)
	case <-ctx.Done():
		running, _ := hs.Wait(ctx)
		errs = append(errs, fmt.Errorf("shutdown: the engine did not stop within %v (%d HTTP requests still running); the store is closed anyway", budget, running))
		d.log.Error("shutdown: the engine did not stop within its budget; closing the store anyway", "budget", budget,
			"http_requests_running", running)
	}
	done()

	// The embedded store's final snapshot has a deadline of its own. Closing the connections
	// to Redis is instant, unless go-redis's Close waits for a Sentinel lookup in progress,
	// which, with every sentinel gone, dials each in turn for seconds: it gets a second at
	// most (within what is left of shutdown_timeout), then the process's exit closes them.
	stage, budget = time.Now(), d.cfg.Store.SnapshotTimeout
	if !d.cfg.embeddedSnapshots() {
		budget = min(max(d.cfg.ShutdownTimeout-time.Since(start), 100*time.Millisecond), time.Second)
	}
	ctx, done = context.WithTimeout(context.Background(), budget)
	closed := make(chan error, 1)
	go func() { closed <- d.store.Close(ctx) }()
	select {
	case err = <-closed:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: the store did not close within %v (Redis unreachable); left to the process's exit", budget)
	}
	done()
	if err != nil {
		errs = append(errs, err)
	}
	d.log.Info("shutdown: store closed", "took", time.Since(stage).Round(time.Millisecond), "budget", budget,
		"final_snapshot", d.cfg.embeddedSnapshots(), "ok", err == nil)
	d.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// errNotLeader is why the main AMI session writes nothing while this instance is not the leader.
var errNotLeader = errors.New("this instance is not the leader")

// lead is the term of this instance as the leader (package leader), until ctx ends: the engine
// runs (it puts PRESENCED_APP back, checks everyone, and works off its queue), and so do the
// schedules, timed profiles and calendars.
func (d *daemon) lead(ctx context.Context, epoch int64) {
	d.log.Info("leading: this instance writes to Asterisk", "epoch", epoch, "asterisk", d.cfg.Asterisk.ID)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.engine.Run(ctx); err != nil {
			d.log.Error("engine stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.trig.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("triggers stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.missed.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("unanswered queue calls no longer counted", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.cal.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("calendar connector stopped", "err", err)
		}
	})
	wg.Wait()
}

// asteriskReady runs after every AMI (re)connect once Asterisk is fully booted: the engine
// puts back whatever Asterisk lost (a restart forgets globals and, without persistentmembers,
// dynamic queue members) and reads the phones' states again.
func (d *daemon) asteriskReady(ctx context.Context) {
	d.resyncs.Inc()
	d.engine.AsteriskReady(ctx)
}

// amiSession is a further write session, by the name its errors and readiness give it.
type amiSession struct {
	name string
	c    *ami.Client
}

// gatedSessions are the further sessions that write, gated like the main one: the changes
// session first, then the queue write sessions.
func (d *daemon) gatedSessions() []amiSession {
	var out []amiSession
	if d.amiChanges != nil {
		out = append(out, amiSession{"changes connection", d.amiChanges})
	}
	for i, c := range d.amiWrite {
		out = append(out, amiSession{fmt.Sprintf("write connection %d", i+2), c})
	}
	return out
}
