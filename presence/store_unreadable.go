package presence

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The kinds of records the StateStore keeps, as the unreadable-record metrics label them.
const (
	kindState   = "state"   // presenced:user:<id>
	kindProfile = "profile" // presenced:user:<id>:profiles
	kindJournal = "journal" // presenced:user:<id>:journal
	kindRecord  = "record"  // field record of presenced:user:<id> (an unreadable one counts as none)
)

// unreadableRecords remembers which keys were found unreadable, so that a bad record is logged
// when it is found (or what is wrong with it changes) and when it is readable again, not at
// every read, and counts them.
type unreadableRecords struct {
	log   *slog.Logger
	reads *prometheus.CounterVec // reads that met an unreadable record, by kind
	known *prometheus.GaugeVec   // keys known unreadable now, by kind

	n  atomic.Int64 // len(bad), read without the lock on the path of every good read
	mu sync.Mutex
	// bad maps a key known unreadable to its kind and what is wrong with it.
	bad map[string]badRecord
}

type badRecord struct{ kind, why string }

func newUnreadableRecords(log *slog.Logger, reg prometheus.Registerer) *unreadableRecords {
	f := promauto.With(reg) // a nil Registerer makes unregistered metrics
	u := &unreadableRecords{
		log: log,
		reads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_store_unreadable_records_total",
			Help: "Reads of the state store that met a record presenced cannot read (a value that does not decode, a key " +
				"holding another type) and left it out, by kind of record (state, profile, journal, record). The log names the key.",
		}, []string{"kind"}),
		known: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "presenced_store_unreadable_records",
			Help: "Keys of the state store found unreadable at their last read, by kind of record (state, profile, journal, record).",
		}, []string{"kind"}),
		bad: map[string]badRecord{},
	}
	for _, k := range []string{kindState, kindProfile, kindJournal, kindRecord} {
		u.reads.WithLabelValues(k)
		u.known.WithLabelValues(k)
	}
	return u
}

// note records the outcome of reading key: nil means it was read whole (or is absent); an error
// made of *CorruptErrors means it (or some of its fields) could not be read; any other error
// says nothing about the record and is ignored.
func (u *unreadableRecords) note(kind, key string, err error) {
	if err == nil {
		if u.n.Load() == 0 {
			return
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		if b, ok := u.bad[key]; ok {
			delete(u.bad, key)
			u.n.Store(int64(len(u.bad)))
			u.known.WithLabelValues(b.kind).Dec()
			u.log.Info("state store record readable again", "kind", b.kind, "key", key)
		}
		return
	}
	corrupt := corruptErrors(err)
	if corrupt == nil {
		return
	}
	u.reads.WithLabelValues(kind).Add(float64(len(corrupt)))
	why := err.Error()
	u.mu.Lock()
	defer u.mu.Unlock()
	b, ok := u.bad[key]
	if ok && b.why == why {
		return
	}
	if !ok {
		u.known.WithLabelValues(kind).Inc()
	}
	u.bad[key] = badRecord{kind: kind, why: why}
	u.n.Store(int64(len(u.bad)))
	u.log.Error("unreadable record in the state store: left out until it is fixed or deleted", "kind", kind, "key", key,
		"records", len(corrupt), "err", err)
}
