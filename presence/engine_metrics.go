package presence

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type engineMetrics struct {
	switches       *prometheus.CounterVec
	switchDuration *prometheus.HistogramVec
	ops            *prometheus.CounterVec
	observeBatch   prometheus.Histogram
	observeTime    prometheus.Histogram
	observeErrors  prometheus.Counter
	running        prometheus.Gauge
	driftRepairs   prometheus.Counter
	flapping       prometheus.Counter
	refusedActions prometheus.Counter
	eventsAgreed   prometheus.Counter
	dndChanges     *prometheus.CounterVec
	dndSwitches    *prometheus.CounterVec

	driftFound    *prometheus.CounterVec
	driftRepaired *prometheus.CounterVec
	driftReported *prometheus.CounterVec
	driftAdopted  *prometheus.CounterVec
	driftDeferred *prometheus.CounterVec

	reconcileDuration   prometheus.Gauge
	reconcileRoundTrips prometheus.Gauge
	reconcileUsers      prometheus.Gauge
	reconcileDrifted    prometheus.Gauge
	reconcileLast       prometheus.Gauge
}

func newEngineMetrics(reg prometheus.Registerer, states *StateStore, catalog func() *Catalog) *engineMetrics {
	f := promauto.With(reg) // a nil Registerer makes unregistered metrics
	if reg != nil {
		reg.MustRegister(&recordCollector{states: states}, &profileCollector{states: states, catalog: catalog})
	}
	m := &engineMetrics{
		switches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_switches_total",
			Help: "Profile switches by source and result (in_sync, drift: some operation failed and a repair is pending).",
		}, []string{"source", "result"}),
		switchDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_switch_duration_seconds",
			Help:    "Time from a switch request to the PBX state applied.",
			Buckets: []float64{.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		ops: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_operations_total",
			Help: "PBX operations of switches and repairs by concern (queue, followme, blf, webhook), kind and result.",
		}, []string{"concern", "kind", "result"}),
		observeBatch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_observe_batch_users",
			Help:    "Users served by one batched read of the PBX.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		observeTime: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_observe_duration_seconds",
			Help:    "Time of one batched read of the PBX.",
			Buckets: prometheus.DefBuckets,
		}),
		observeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_observe_errors_total",
			Help: "Batched reads of the PBX that failed.",
		}),
		driftRepairs: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_drift_repairs_total",
			Help: "Repairs (passes that were neither a switch nor a reconcile) that found drift and changed the PBX.",
		}),
		eventsAgreed: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_events_agreed_total",
			Help: "PBX events that showed a user's PBX state as presenced had just applied it, so that no pass followed.",
		}),
		refusedActions: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_personal_actions_refused_total",
			Help: "Actions of personal profiles left out when a desired state was compiled, because the personal-profile rules do not allow them (stored under older rules); counted at every compile.",
		}),
		flapping: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_drift_flapping_total",
			Help: "Times a user's PBX state kept being changed back and was reported instead of repaired again.",
		}),
		driftFound: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_drift_found_total",
			Help: "Differences between a user's desired and observed PBX state found by repairs, by kind of state (a reported difference counts once, not at every check).",
		}, []string{"kind"}),
		driftRepaired: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_drift_repaired_total",
			Help: "Differences put back on the PBX by repairs and reconciles, by kind of state.",
		}, []string{"kind"}),
		driftReported: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_drift_reported_total",
			Help: "Differences left on the PBX and reported (policy report), by kind of state.",
		}, []string{"kind"}),
		driftAdopted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_drift_adopted_total",
			Help: "Differences accepted as the desired state (policy adopt), by kind of state.",
		}, []string{"kind"}),
		driftDeferred: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_drift_deferred_total",
			Help: "Queue changes of repairs made to wait because the user was on a call, by kind of state.",
		}, []string{"kind"}),
		reconcileDuration: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_reconcile_last_duration_seconds",
			Help: "Wall time of the last full reconcile (every user checked against the PBX).",
		}),
		reconcileRoundTrips: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_reconcile_last_round_trips",
			Help: "AMI actions sent during the last full reconcile (reads and repairs).",
		}),
		reconcileUsers: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_reconcile_last_users",
			Help: "Users checked by the last full reconcile.",
		}),
		reconcileDrifted: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_reconcile_last_drifted_users",
			Help: "Users in whose PBX state the last full reconcile found differences.",
		}),
		reconcileLast: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_reconcile_last_completed_timestamp_seconds",
			Help: "When the last full reconcile completed, in Unix time.",
		}),
		dndChanges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_dnd_key_changes_total",
			Help: "Changes of a user's DND on the PBX away from their profile (the DND key of a phone) seen under the drift policy switch, by direction (on, off).",
		}, []string{"direction"}),
		dndSwitches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_dnd_key_switches_total",
			Help: "Profile switches by the DND key of a phone (drift policy switch), by result: switched, refused (too many within dnd_key.window), skipped (no profile fits, or the user switched meanwhile), failed.",
		}, []string{"result"}),
		running: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_engine_running",
			Help: "1 while this instance's engine runs: it is the one writing to Asterisk (the leader).",
		}),
	}
	for _, s := range []Source{SourceAPI, SourceFeatureCode, SourceSchedule, SourceExternal, SourceExpiry, SourceUnanswered, SourcePhone, SourceSystem} {
		for _, r := range []string{"in_sync", "drift"} {
			m.switches.WithLabelValues(string(s), r)
		}
	}
	for _, d := range []string{"on", "off"} {
		m.dndChanges.WithLabelValues(d)
	}
	for _, r := range []string{"switched", "refused", "skipped", "failed"} {
		m.dndSwitches.WithLabelValues(r)
	}
	for _, k := range DriftKinds() {
		for _, v := range []*prometheus.CounterVec{m.driftFound, m.driftRepaired, m.driftReported, m.driftAdopted, m.driftDeferred} {
			v.WithLabelValues(string(k))
		}
	}
	return m
}

// drift counts what a repair found and did. Differences already reported or deferred by the
// previous check are not counted again.
func (m *engineMetrics) drift(outcomes []Outcome, newReported, newDeferred []Op) {
	for _, o := range outcomes {
		k := string(KindOf(o.Op.Kind))
		if k == "" {
			continue
		}
		switch o.Result {
		case ResultApplied:
			m.driftFound.WithLabelValues(k).Inc()
			m.driftRepaired.WithLabelValues(k).Inc()
		case ResultAdopted:
			m.driftFound.WithLabelValues(k).Inc()
			m.driftAdopted.WithLabelValues(k).Inc()
		case ResultFailed:
			m.driftFound.WithLabelValues(k).Inc()
		}
	}
	for _, op := range newReported {
		m.driftFound.WithLabelValues(string(KindOf(op.Kind))).Inc()
		m.driftReported.WithLabelValues(string(KindOf(op.Kind))).Inc()
	}
	for _, op := range newDeferred {
		m.driftFound.WithLabelValues(string(KindOf(op.Kind))).Inc()
		m.driftDeferred.WithLabelValues(string(KindOf(op.Kind))).Inc()
	}
}

func (m *engineMetrics) fullChecked(sum CheckSummary) {
	m.reconcileDuration.Set(sum.Took.Seconds())
	m.reconcileRoundTrips.Set(float64(sum.RoundTrips))
	m.reconcileUsers.Set(float64(sum.Users))
	m.reconcileDrifted.Set(float64(sum.Drifted))
	m.reconcileLast.Set(float64(time.Now().UnixMilli()) / 1000)
}

func (m *engineMetrics) switched(src Source, inSync bool, took time.Duration) {
	r := "in_sync"
	if !inSync {
		r = "drift"
	}
	m.switches.WithLabelValues(string(src), r).Inc()
	m.switchDuration.WithLabelValues(string(src)).Observe(took.Seconds())
}

// op counts an outcome of concern's: the one counter of operations, presenced_operations_total.
func (m *engineMetrics) op(concern string, o Outcome) {
	m.ops.WithLabelValues(concern, string(o.Op.Kind), string(o.Result)).Inc()
}

func (m *engineMetrics) observed(users int, took time.Duration, err error) {
	m.observeBatch.Observe(float64(users))
	m.observeTime.Observe(took.Seconds())
	if err != nil {
		m.observeErrors.Inc()
	}
}

// recordCollector reports the users' records as every instance reads them from Redis, at
// scrape time: how many users are out of sync and how many wait for a retry.
type recordCollector struct{ states *StateStore }

var (
	outOfSyncDesc = prometheus.NewDesc("presenced_users_out_of_sync",
		"Users whose PBX state does not match their profile after their last check (failed, reported or waiting for a call to end), as recorded in Redis.", nil, nil)
	retriesDesc = prometheus.NewDesc("presenced_repairs_pending",
		"Users whose last check failed and who wait for a retry, as recorded in Redis.", nil, nil)
)

func (c *recordCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outOfSyncDesc
	ch <- retriesDesc
}

func (c *recordCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out, retries, err := c.states.RecordCounts(ctx)
	if err != nil {
		return // the store is down: no value rather than a wrong one, and the rest of the scrape stands
	}
	ch <- prometheus.MustNewConstMetric(outOfSyncDesc, prometheus.GaugeValue, float64(out))
	ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.GaugeValue, float64(retries))
}

// trackingRegisterer registers a term's metrics and unregisters them when the term ends, so
// that the next term (a leader again) can register its own.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (r *trackingRegisterer) registerer() prometheus.Registerer {
	if r.reg == nil {
		return nil
	}
	return r
}

func (r *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *trackingRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

func (r *trackingRegisterer) unregister() {
	if r.reg == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		r.reg.Unregister(c)
	}
	r.cs = nil
}
