package presencetest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// Rig is an engine with its state under a key prefix of its own in a Redis, switching through
// a PBX (or the concerns the test gives): what the tests of code built on the engine (the API,
// the triggers, the calendar connector) run against. The engine runs until the test ends.
type Rig struct {
	Redis   *redis.Client
	Prefix  string
	Catalog *presence.Catalog
	States  *presence.StateStore
	// PBX is the engine's one concern; nil when RigOptions.Engine named the concerns.
	PBX    *PBX
	Engine *presence.Engine
}

// RigOptions configures NewRig.
type RigOptions struct {
	// Redis holds the state: the lab's, or a miniredis.
	Redis *redis.Client
	// Prefix is the state's key prefix, fresh for each test.
	Prefix string
	// Users and Profiles make the catalog.
	Users    []presence.User
	Profiles []presence.Profile
	// States are the state store's options; NewRig sets their Prefix.
	States presence.StateStoreOptions
	// Engine are the engine's options; NewRig sets their Catalog, States and Naming (the
	// default), and their Concerns to a new PBX when they are nil.
	Engine presence.EngineOptions
}

// NewRig checks the state's schema, builds the engine and runs it until the test ends.
func NewRig(t testing.TB, opts RigOptions) *Rig {
	t.Helper()
	r := &Rig{Redis: opts.Redis, Prefix: opts.Prefix}
	sopts := opts.States
	sopts.Prefix = opts.Prefix
	r.States = presence.NewStateStore(opts.Redis, sopts)
	if err := r.States.CheckSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.Catalog, err = presence.NewCatalogFrom(presence.CatalogConfig{Users: opts.Users, Profiles: opts.Profiles}); err != nil {
		t.Fatal(err)
	}
	eopts := opts.Engine
	eopts.Catalog, eopts.States, eopts.Naming = r.Catalog, r.States, presence.DefaultNaming()
	if eopts.Concerns == nil {
		r.PBX = NewPBX()
		eopts.Concerns = []presence.Concern{r.PBX}
	}
	if r.Engine, err = presence.NewEngine(eopts); err != nil {
		t.Fatal(err)
	}
	Run(t, r.Engine)
	return r
}
