package presence

// Exports for the external tests (package presence_test): the engine tests run against the
// exported API and presencetest.PBX, and reach through these only what no exported name
// shows (metrics, the StateStore's keys, the engine's retired users). Test-only: they are not
// part of the package's API.

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
)

// LabEnv is the lab Redis of this test binary, started by the first test that needs it
// (labEnv); the pure tests start nothing.
func LabEnv(t testing.TB) *lab.Env { t.Helper(); return labEnv(t) }

// Alice is the user alice of the tests (model_test.go).
func Alice() User { return alice() }

// Bob is the user bob of the tests (rules_test.go).
func Bob() User { return bob() }

// Lunch is the profile lunch of the tests (model_test.go).
func Lunch() Profile { return lunch() }

// OpenRules is the catalog configuration with open personal-profile rules (rules_test.go).
func OpenRules() CatalogConfig { return openRules() }

// CorruptOnly reports whether err is made of CorruptErrors only (corruptOnly).
func CorruptOnly(err error) bool { return corruptOnly(err) }

// The kinds of records, as the unreadable-record metrics label them.
const (
	KindState   = kindState
	KindProfile = kindProfile
	KindJournal = kindJournal
	KindRecord  = kindRecord
)

// EngineMetrics are the engine's metrics the tests read.
type EngineMetrics struct {
	Flapping, EventsAgreed, RefusedActions                 prometheus.Counter
	DriftFound, DriftRepaired, DriftReported, DriftAdopted *prometheus.CounterVec
	DNDChanges, DNDSwitches                                *prometheus.CounterVec
}

// Metrics returns the engine's metrics the tests read.
func (e *Engine) Metrics() EngineMetrics {
	m := e.metrics
	return EngineMetrics{Flapping: m.flapping, EventsAgreed: m.eventsAgreed, RefusedActions: m.refusedActions,
		DriftFound: m.driftFound, DriftRepaired: m.driftRepaired, DriftReported: m.driftReported, DriftAdopted: m.driftAdopted,
		DNDChanges: m.dndChanges, DNDSwitches: m.dndSwitches}
}

// RetiredUsers is how many users whose old definition a reload left e still holds.
func (e *Engine) RetiredUsers() int {
	e.retireMu.Lock()
	defer e.retireMu.Unlock()
	return len(e.retired)
}

// Redis is the client s runs on.
func (s *StateStore) Redis() *redis.Client { return s.rdb }

// Prefix starts every key of s.
func (s *StateStore) Prefix() string { return s.prefix }

// UserKey is the key of a user's state.
func (s *StateStore) UserKey(id UserID) string { return s.userKey(id) }

// ProfilesKey is the key of a user's personal profiles.
func (s *StateStore) ProfilesKey(id UserID) string { return s.profilesKey(id) }

// JournalKey is the key of a user's journal.
func (s *StateStore) JournalKey(id UserID) string { return s.journalKey(id) }

// StoreMetrics are the StateStore's metrics the tests read.
type StoreMetrics struct {
	UnreadableReads *prometheus.CounterVec
	UnreadableKnown *prometheus.GaugeVec
	// Unconfirmed is nil when the store does not wait for replicas.
	Unconfirmed prometheus.Counter
}

// Metrics returns the StateStore's metrics the tests read.
func (s *StateStore) Metrics() StoreMetrics {
	m := StoreMetrics{UnreadableReads: s.unreadable.reads, UnreadableKnown: s.unreadable.known}
	if s.wait != nil {
		m.Unconfirmed = s.wait.unconfirmed
	}
	return m
}

// NewProfileCollector is the collector of presenced_users_by_profile an engine registers.
func NewProfileCollector(states *StateStore, catalog func() *Catalog) prometheus.Collector {
	return &profileCollector{states: states, catalog: catalog}
}
