package astdb_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// TestWatchAsksForEveryoneOnADialplanReload: a reload of pbx_config (which may clear globals)
// asks for everyone; astdb changes send no events, so a DBPut does not.
func TestWatchAsksForEveryoneOnADialplanReload(t *testing.T) {
	ctx := lab.Context(t)
	c, err := astdb.New(astdb.Options{AMI: env.AMI(t, false, nil)})
	if err != nil {
		t.Fatal(err)
	}
	rec := presencetest.NewWatchRecorder()
	rec.Start(t, c, &presence.Catalog{}, 100*time.Millisecond)
	admin := env.AMI(t, true, nil)
	fam := lab.Unique("PDW")
	t.Cleanup(func() { _ = admin.DBDelTree(lab.Context(t), fam, "") })
	if err := admin.DBPut(ctx, fam, "9999", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Exec(ctx, "asterisk", "-rx", "module reload pbx_config.so"); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "a reload of pbx_config asks for everyone", 10*time.Second, func() bool { return len(rec.All()) > 0 })
	if all := rec.All(); len(all) != 1 {
		t.Errorf("everyone asked for %v, want once for the reload", all)
	}
}
