// Package astdb is the presence concern for what a profile writes into astdb and into
// global variables: the ring list, forwarding, caller ID, the no-answer target, the location,
// the DND flag, the active profile and the dialplan variables of variable actions.
//
// # Observing
//
// Asterisk sends no events for astdb or global variables (docs/asterisk.md §3, §6), so Observe polls.
// It costs one DBGetTree per distinct astdb family named by the wanted keys of all users
// together (a key "PROFILE/1001/active" is in family "PROFILE"), whatever the number of users,
// plus one Getvar per distinct global variable: AMI has no bulk read of globals, so keep them
// few (a global is read once however many users want it) and prefer astdb keys, which the
// dialplan reads with ${DB(...)} just as cheaply.
//
// DBGetTree matches families with SQL LIKE, which ignores ASCII case and treats '_' and '%' as
// wildcards; Observe keeps only the entries whose full path is exactly a wanted key, so such
// families cost nothing but a larger reply.
//
// # Applying
//
// db_put is DBPut, db_del is DBDel ("Database entry could not be deleted", which Asterisk also
// answers for a key that is already gone, is ResultUnchanged) and global is Setvar without a
// channel (an empty value deletes the global). Values are sent as they are: '%', ':', commas,
// quotes and backslashes survive. AMI strips blanks at the start of a header value, so a value
// that starts with a space or tab cannot be stored as such and its operation fails instead of
// being re-applied for ever.
//
// # Its name
//
// The concern was called followme before the package was named for what it writes. Its name
// where users see it stays "followme": Concern.Name, and so the concern label of the
// operations counter and the errors of its operations in the journal, the "component" of its
// log lines, and its deprecated counter presenced_followme_ops_total.
package astdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiconcern"
	"github.com/presenced/presenced/presence"
)

// Options configures a Concern (amiconcern.Options). Its AMI user needs write classes system
// (DBPut, DBDel, DBGetTree) and call (Setvar, Getvar). Registerer receives
// presenced_followme_ops_total (deprecated: presenced_operations_total{concern="followme"}
// counts the same). SmallBatch is the most users an observation reads key by key (one
// DBGetTree per user subtree); larger batches read whole families.
type Options = amiconcern.Options

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxInFlight = amiconcern.DefaultMaxInFlight
	DefaultSmallBatch  = amiconcern.DefaultSmallBatch
)

// Concern observes and applies astdb keys and global variables. It implements
// presence.Concern and is safe for concurrent use: the engine may Apply for many users at
// once over the one shared ami.Client.
type Concern struct {
	base *amiconcern.Base
	// mu guards what Survey reads: the whole families and globals the last full check
	// wanted (nil: nothing).
	mu            sync.Mutex
	surveyTrees   map[tree]bool
	surveyGlobals map[string]bool
}

var (
	_ presence.Concern  = (*Concern)(nil)
	_ presence.Surveyor = (*Concern)(nil)
)

// New validates o and returns a Concern.
func New(o Options) (*Concern, error) {
	b, err := amiconcern.New(amiconcern.Spec{
		Name:    "followme", // the package's name before it was astdb: see the package doc
		Kinds:   []presence.OpKind{presence.OpDBPut, presence.OpDBDel, presence.OpGlobal},
		Counter: "presenced_followme_ops_total",
		Help:    "Deprecated: presenced_operations_total{concern=\"followme\"}. astdb and global variable operations applied, by kind (db_put, db_del, global) and result (applied, unchanged, failed).",
	}, o)
	if err != nil {
		return nil, err
	}
	return &Concern{base: b}, nil
}

// Name implements presence.Concern: "followme".
func (c *Concern) Name() string { return c.base.Name() }

// Kinds implements presence.Concern: db_put, db_del and global.
func (c *Concern) Kinds() []presence.OpKind { return c.base.Kinds() }

// Observe implements presence.Concern. For every user of want it records in have[user].AstDB
// each astdb key want[user].AstDB names (nil when the key does not exist) and in
// have[user].Globals each global want[user].Globals names (nil when unset or empty, which
// Asterisk does not distinguish). It touches no other field of have, so other concerns may
// observe into the same targets concurrently; have must hold a target for every user of want.
//
// Cost: one DBGetTree per distinct family and one Getvar per distinct global, run
// concurrently within Options.MaxInFlight. A key that is not "FAMILY/key" is recorded as
// absent (applying it fails).
func (c *Concern) Observe(ctx context.Context, want map[presence.UserID]*presence.Target, have map[presence.UserID]*presence.Target) error {
	return c.observe(ctx, want, have, &survey{c: c})
}

// tree is what one DBGetTree reads: a family, or a key's subtree within it.
type tree struct{ family, key string }

// Survey implements presence.Surveyor: it reads the whole families and the globals the last
// full check wanted (Fill remembers them), for a full check to fill its users' observations
// from while it reads their states.
func (c *Concern) Survey(ctx context.Context) (presence.Survey, error) {
	c.mu.Lock()
	trees, globals := c.surveyTrees, c.surveyGlobals
	c.mu.Unlock()
	s := &survey{c: c, full: true, trees: trees, globals: globals, db: map[string]string{}, vars: map[string]string{}}
	if err := c.read(ctx, trees, globals, s.db, s.vars); err != nil {
		return nil, err
	}
	return s, nil
}

// survey is what Survey read (the trees and globals it read, and their values); full marks
// a full check's (Observe's is empty).
type survey struct {
	c       *Concern
	full    bool
	trees   map[tree]bool
	globals map[string]bool
	db      map[string]string // "FAMILY/key" → value, exactly as wanted keys are spelled
	vars    map[string]string // global → value
}

// Fill implements presence.Survey: it observes as Observe does, reading only the trees and
// globals the survey did not, and remembers for the next survey what this check read.
func (s *survey) Fill(ctx context.Context, want, have map[presence.UserID]*presence.Target) error {
	return s.c.observe(ctx, want, have, s)
}

// observe is Observe, with what a survey read taken from it; a full check's survey also sets
// what the next one reads.
func (c *Concern) observe(ctx context.Context, want map[presence.UserID]*presence.Target, have map[presence.UserID]*presence.Target, got *survey) error {
	// What to read: for a small batch each wanted key's subtree (DBGetTree Family=PROFILE
	// Key=1001 answers /PROFILE/1001 and everything under it), for a large one whole families.
	// Either way the round trips are bounded by a constant, and a switch of one user does not
	// pull every user's keys.
	trees := map[tree]bool{}
	wholeFamilies := len(want) > c.base.SmallBatch
	globals := map[string]bool{}
	for u, w := range want {
		if w == nil {
			continue
		}
		if have[u] == nil {
			return fmt.Errorf("followme: observe: no observed target for user %s", u)
		}
		for key := range w.AstDB {
			fam, rest, ok := splitKey(key)
			if !ok {
				continue
			}
			first, _, _ := strings.Cut(rest, "/")
			if wholeFamilies {
				first = ""
			}
			trees[tree{fam, first}] = true
		}
		for g := range w.Globals {
			if presence.ValidVariableName(g) {
				globals[g] = true
			}
		}
	}
	if got.full {
		c.mu.Lock()
		c.surveyTrees, c.surveyGlobals = nil, nil
		if wholeFamilies {
			c.surveyTrees, c.surveyGlobals = maps.Clone(trees), maps.Clone(globals)
		}
		c.mu.Unlock()
	}
	db, vars := got.db, got.vars
	if db == nil {
		db, vars = map[string]string{}, map[string]string{}
	}
	for tr := range got.trees {
		delete(trees, tr)
	}
	for g := range got.globals {
		delete(globals, g)
	}
	if err := c.read(ctx, trees, globals, db, vars); err != nil {
		return err
	}

	for u, w := range want {
		if w == nil {
			continue
		}
		h := have[u]
		if len(w.AstDB) > 0 && h.AstDB == nil {
			h.AstDB = map[string]*string{}
		}
		for key := range w.AstDB {
			if v, ok := db[key]; ok {
				h.AstDB[key] = &v
			} else {
				h.AstDB[key] = nil
			}
		}
		if len(w.Globals) > 0 && h.Globals == nil {
			h.Globals = map[string]*string{}
		}
		for g := range w.Globals {
			if v := vars[g]; v != "" {
				h.Globals[g] = &v
			} else {
				h.Globals[g] = nil
			}
		}
	}
	return nil
}

// read reads the trees (DBGetTree) and globals (Getvar) at once, within Options.MaxInFlight,
// into db and vars.
func (c *Concern) read(ctx context.Context, trees map[tree]bool, globals map[string]bool, db, vars map[string]string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for tr := range trees {
		fam := tr.family
		wg.Go(func() {
			if err := c.base.Acquire(ctx); err != nil {
				fail(fmt.Errorf("followme: observe astdb family %s: %w", fam, err))
				return
			}
			entries, err := c.base.Reader.DBGetTree(ctx, fam, tr.key)
			c.base.Release()
			if err != nil {
				fail(fmt.Errorf("followme: observe astdb %s/%s: %w", fam, tr.key, err))
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range entries {
				// Key is the full path, "/FAMILY/sub/key". LIKE may have matched other
				// spellings of the family; only exact paths can be wanted keys.
				if k := strings.TrimPrefix(e.Key, "/"); strings.HasPrefix(k, fam+"/") {
					db[k] = e.Value
				}
			}
		})
	}
	for g := range globals {
		wg.Go(func() {
			if err := c.base.Acquire(ctx); err != nil {
				fail(fmt.Errorf("followme: observe global %s: %w", g, err))
				return
			}
			m, err := c.base.Reader.Do(ctx, ami.Getvar{Variable: g})
			c.base.Release()
			if err != nil {
				fail(fmt.Errorf("followme: observe global %s: %w", g, err))
				return
			}
			mu.Lock()
			vars[g] = m.Get("Value")
			mu.Unlock()
		})
	}
	wg.Wait()
	return firstErr
}

// Apply implements presence.Concern: it sends u's operations at once (presence.ApplyAll: they
// name distinct keys and variables) and reports one outcome per operation. Operations are
// independent: one that fails does not stop the others. Once ctx is done the operations not
// yet sent fail.
func (c *Concern) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	return c.base.Apply(ctx, u, ops, c.apply)
}

// errAlreadyDeleted is Asterisk's answer to DBDel of a key that does not exist (and to a
// failed delete: main/db.c cannot tell them apart).
const errAlreadyDeleted = "Database entry could not be deleted"

func (c *Concern) apply(ctx context.Context, op presence.Op) presence.Outcome {
	switch op.Kind {
	case presence.OpDBPut:
		fam, key, ok := splitKey(op.Key)
		if !ok {
			return presence.Failed(op, fmt.Errorf("db put %q: key must be FAMILY/key", op.Key))
		}
		if err := checkValue(op.Value); err != nil {
			return presence.Failed(op, fmt.Errorf("db put %s: %w", op.Key, err))
		}
		if _, err := c.base.Do(ctx, ami.DBPut{Family: fam, Key: key, Value: op.Value}); err != nil {
			return presence.Failed(op, fmt.Errorf("db put %s: %w", op.Key, err))
		}
		return presence.Outcome{Op: op, Result: presence.ResultApplied}
	case presence.OpDBDel:
		fam, key, ok := splitKey(op.Key)
		if !ok {
			return presence.Failed(op, fmt.Errorf("db del %q: key must be FAMILY/key", op.Key))
		}
		if _, err := c.base.Do(ctx, ami.DBDel{Family: fam, Key: key}); err != nil {
			if msg, ok := ami.ResponseMessage(err); ok && msg == errAlreadyDeleted {
				return presence.Outcome{Op: op, Result: presence.ResultUnchanged}
			}
			return presence.Failed(op, fmt.Errorf("db del %s: %w", op.Key, err))
		}
		return presence.Outcome{Op: op, Result: presence.ResultApplied}
	case presence.OpGlobal:
		if !presence.ValidVariableName(op.Key) {
			return presence.Failed(op, fmt.Errorf("global %q: not a variable name (letters, digits, '_', '/', '.', '-')", op.Key))
		}
		if err := checkValue(op.Value); err != nil {
			return presence.Failed(op, fmt.Errorf("global %s: %w", op.Key, err))
		}
		if _, err := c.base.Do(ctx, ami.Setvar{Variable: op.Key, Value: op.Value}); err != nil {
			if op.Value == "" {
				return presence.Failed(op, fmt.Errorf("global %s clear: %w", op.Key, err))
			}
			return presence.Failed(op, fmt.Errorf("global %s set: %w", op.Key, err))
		}
		return presence.Outcome{Op: op, Result: presence.ResultApplied}
	}
	return c.base.Unsupported(op)
}

// splitKey splits "FAMILY/key" (key may hold further '/') into the DBPut/DBDel parameters.
func splitKey(k string) (family, key string, ok bool) {
	family, key, ok = strings.Cut(k, "/")
	return family, key, ok && family != "" && key != ""
}

// checkValue refuses values AMI would not carry unchanged. CR, LF and NUL are refused by the
// ami package too; leading blanks are stripped by Asterisk's header parser.
func checkValue(v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return errors.New("value contains CR, LF or NUL")
	}
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return fmt.Errorf("value %q starts with blanks, which AMI strips", v)
	}
	return nil
}
