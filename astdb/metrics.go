package astdb

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/internal/opcount"
	"github.com/presenced/presenced/presence"
)

// kinds are the operation kinds the concern applies, the values of the "kind" label.
func kinds() []presence.OpKind {
	return []presence.OpKind{presence.OpDBPut, presence.OpDBDel, presence.OpGlobal}
}

// newMetrics counts the concern's operations (presenced_followme_ops_total); nil reg counts nothing.
func newMetrics(reg prometheus.Registerer) (*opcount.Counter, error) {
	return opcount.New(reg, "presenced_followme_ops_total",
		"astdb and global variable operations applied, by kind (db_put, db_del, global) and result (applied, unchanged, failed).", kinds())
}
