package ari

import (
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:8088/ari", Username: "u", Password: "p", App: "presenced"}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no URL", func(c *Config) { c.URL = "" }, "Config.URL is required"},
		{"bad URL scheme", func(c *Config) { c.URL = "ftp://x/ari" }, "Config.URL"},
		{"URL without host", func(c *Config) { c.URL = "http:///ari" }, "Config.URL"},
		{"bad websocket URL", func(c *Config) { c.WebsocketURL = "http://x/ari/events" }, "Config.WebsocketURL"},
		{"no username", func(c *Config) { c.Username = "" }, "Config.Username"},
		{"no password", func(c *Config) { c.Password = "" }, "Config.Password"},
		{"no app", func(c *Config) { c.App = "" }, "Config.App is required"},
		{"app with slash", func(c *Config) { c.App = "a/b" }, "Config.App"},
		{"instance with space", func(c *Config) { c.InstanceID = "a b" }, "Config.InstanceID"},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "Config.RequestTimeout"},
		{"negative connections", func(c *Config) { c.MaxConnections = -1 }, "Config.MaxConnections"},
		{"negative buffer", func(c *Config) { c.EventBuffer = -1 }, "Config.EventBuffer"},
		{"negative ping", func(c *Config) { c.PingInterval = -1 }, "Config.PingInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("New succeeded, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("New: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSettingsDefaults(t *testing.T) {
	c, err := New(Config{URL: "https://pbx.example:8089/ari/", Username: "u", Password: "p", App: "presenced"})
	if err != nil {
		t.Fatal(err)
	}
	s := c.cfg
	if !strings.HasPrefix(c.AppName(), "presenced-") || len(c.AppName()) != len("presenced-")+8 {
		t.Errorf("AppName() = %q, want presenced-<8 hex>", c.AppName())
	}
	if want := "wss://pbx.example:8089/ari/events?app=" + c.AppName(); s.wsURL != want {
		t.Errorf("websocket URL = %q, want %q", s.wsURL, want)
	}
	if s.baseURL != "https://pbx.example:8089/ari" {
		t.Errorf("base URL = %q", s.baseURL)
	}
	if s.RequestTimeout != DefaultRequestTimeout || s.EventBuffer != DefaultEventBuffer || s.PingInterval != DefaultPingInterval || s.MaxConnections != DefaultMaxConnections {
		t.Errorf("defaults not applied: %v %v %v %v", s.RequestTimeout, s.EventBuffer, s.PingInterval, s.MaxConnections)
	}
	if cap(c.Events()) != DefaultEventBuffer {
		t.Errorf("cap(Events()) = %d", cap(c.Events()))
	}

	c2, err := New(Config{URL: "http://h/ari", Username: "u", Password: "p", App: "presenced", InstanceID: "pbx1"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.AppName() != "presenced-pbx1" {
		t.Errorf("AppName() = %q, want presenced-pbx1", c2.AppName())
	}
	c3, _ := New(Config{URL: "http://h/ari", Username: "u", Password: "p", App: "presenced"})
	if c3.AppName() == c.AppName() {
		t.Errorf("two clients without InstanceID got the same app name %q", c.AppName())
	}
}
