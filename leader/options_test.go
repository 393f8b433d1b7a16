package leader_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/leader"
)

func TestNewValidatesOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: New does no I/O
	t.Cleanup(func() { rdb.Close() })
	valid := func() leader.Options {
		return leader.Options{Redis: rdb, Asterisk: "pbx1", Instance: "host-a"}
	}
	tests := []struct {
		name string
		mod  func(*leader.Options)
		want string // error substring; empty: valid
	}{
		{"defaults", func(*leader.Options) {}, ""},
		{"zero durations take the defaults", func(o *leader.Options) { o.Lease, o.RenewInterval, o.ClockDriftMargin = 0, 0, 0 }, ""},
		{"short lease with derived intervals", func(o *leader.Options) { o.Lease, o.RenewInterval, o.ClockDriftMargin = time.Second, 0, 0 }, ""},
		{"no redis", func(o *leader.Options) { o.Redis = nil }, "Options.Redis is required"},
		{"no asterisk", func(o *leader.Options) { o.Asterisk = "" }, "Options.Asterisk is required"},
		{"asterisk with a space", func(o *leader.Options) { o.Asterisk = "pbx 1" }, "Options.Asterisk \"pbx 1\" must not contain spaces"},
		{"asterisk with a control character", func(o *leader.Options) { o.Asterisk = "pbx\x00" }, "Options.Asterisk"},
		{"no instance", func(o *leader.Options) { o.Instance = "" }, "Options.Instance is required"},
		{"instance with a newline", func(o *leader.Options) { o.Instance = "a\nb" }, "Options.Instance"},
		{"instance too long", func(o *leader.Options) { o.Instance = strings.Repeat("x", 201) }, "Options.Instance must be at most 200 bytes"},
		{"prefix with a space", func(o *leader.Options) { o.Prefix = "a b:" }, "Options.Prefix"},
		{"lease too short", func(o *leader.Options) { o.Lease = 99 * time.Millisecond }, "Options.Lease must be at least 100ms"},
		{"negative lease", func(o *leader.Options) { o.Lease = -time.Second }, "Options.Lease must be at least"},
		{"negative margin", func(o *leader.Options) { o.ClockDriftMargin = -time.Millisecond }, "Options.ClockDriftMargin must be positive"},
		{"margin over half the lease", func(o *leader.Options) { o.ClockDriftMargin = 2600 * time.Millisecond }, "Options.ClockDriftMargin must be at most half of Options.Lease (2.5s)"},
		{"negative renew interval", func(o *leader.Options) { o.RenewInterval = -time.Second }, "Options.RenewInterval must be positive"},
		{"renew interval leaves no second try", func(o *leader.Options) { o.RenewInterval = 2300 * time.Millisecond }, "Options.RenewInterval must be at most half of Options.Lease − Options.ClockDriftMargin (2.25s)"},
		{"derived margin with a renew interval too long", func(o *leader.Options) { o.Lease, o.RenewInterval = time.Second, 500*time.Millisecond }, "(450ms)"},
		{"renew interval just fits", func(o *leader.Options) { o.RenewInterval = 2250 * time.Millisecond }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mod(&o)
			e, err := leader.New(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want == "":
				if e == nil {
					t.Fatal("New returned no Elector")
				}
			case err == nil:
				t.Fatalf("New accepted it; want an error with %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
