package blf

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ami/amitest"
	"github.com/presenced/presenced/presence"
)

func TestCombinable(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"Custom:DND1001", true},
		{"Custom:PROFILE1001-3", true},
		{"CustomPresence:alice.smith@site_2", true},
		{"Custom:a/b+c#*", true},
		{"Custom:${SHELL(id)}", false}, // substitution
		{"Custom:a}b", false},
		{"Custom:a[1]", false},
		{"Custom:ä", false},
		{"Custom:" + strings.Repeat("x", maxCombinedName-len("Custom:")), true},
		{"Custom:" + strings.Repeat("x", maxCombinedName+1-len("Custom:")), false}, // alone past AMI's line
	} {
		if got := combinable(tc.name); got != tc.want {
			t.Errorf("combinable(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCombinedGroups(t *testing.T) {
	names := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s%d", prefix, 1000+i))
		}
		return out
	}
	for _, tc := range []struct {
		what   string
		items  []string
		terms  func(string) []string
		groups int
	}{
		{"no lamp", nil, deviceTerms, 0},
		{"one lamp", names("Custom:DND", 1), deviceTerms, 1},
		{"25 short lamps fit one read", names("Custom:DND", 25), deviceTerms, 1},
		{"60 lamps", names("Custom:PROFILE", 60), deviceTerms, 3},
		{"10 providers fit one read", names("CustomPresence:", 10), presenceTerms, 1},
		{"11 providers", names("CustomPresence:", 11), presenceTerms, 2},
		{"40 providers", names("CustomPresence:", 40), presenceTerms, 4},
		{"the longest name alone", []string{"CustomPresence:" + strings.Repeat("x", maxCombinedName-len("CustomPresence:"))}, presenceTerms, 1},
	} {
		t.Run(tc.what, func(t *testing.T) {
			groups := combinedGroups(tc.items, tc.terms)
			if len(groups) != tc.groups {
				t.Errorf("%d groups, want %d", len(groups), tc.groups)
			}
			var all []string
			for _, g := range groups {
				var terms []string
				for _, it := range g {
					terms = append(terms, tc.terms(it)...)
				}
				if expr := "EVAL(" + strings.Join(terms, "&") + "&" + combinedEnd + ")"; len(expr) > maxCombinedExpr {
					t.Errorf("group of %d: expression of %d bytes, more than %d", len(g), len(expr), maxCombinedExpr)
				}
				all = append(all, g...)
			}
			if !slices.Equal(all, tc.items) {
				t.Errorf("groups %v lose or reorder the items %v", groups, tc.items)
			}
		})
	}
}

// TestCombinedReadFallsBack: a combined read whose answer does not have the shape asked for
// (EVAL not loaded: empty; cut by Asterisk's buffer: no end marker; a message that is not
// base64) is read again one by one, so the observation is right either way; only an empty
// answer stops combining.
func TestCombinedReadFallsBack(t *testing.T) {
	lamps := map[string]string{"Custom:DND1001": "BUSY", "Custom:PROFILE1001-1": "NOT_INUSE", "Custom:x${y}": "INUSE"}
	providers := map[string]presence.PresenceValue{"CustomPresence:1001": {State: "away", Message: "at lunch & back at 2"}}
	// Four lamps (one that cannot be combined, one never set) and two providers (one never set).
	for _, tc := range []struct {
		what        string
		answer      func(expr string) string // the value of Getvar EVAL(expr)
		actions     map[string]int
		keepsCombin bool
	}{
		{"as Asterisk answers", evalLike(lamps, providers, ""), map[string]int{"EVAL": 2, "DEVICE_STATE": 1}, true},
		// the first empty answer stops combining: the providers are read one by one at once
		{"EVAL missing", func(string) string { return "" }, map[string]int{"EVAL": 1, "DEVICE_STATE": 4, "PresenceState": 2}, false},
		{"cut short", func(e string) string { return strings.TrimSuffix(evalLike(lamps, providers, "")(e), "&!") },
			map[string]int{"EVAL": 2, "DEVICE_STATE": 4, "PresenceState": 2}, true},
		{"message not base64", evalLike(lamps, providers, "%%%"), map[string]int{"EVAL": 2, "DEVICE_STATE": 1, "PresenceState": 2}, true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			srv := amitest.NewServer(t)
			var mu sync.Mutex
			got := map[string]int{}
			srv.Handle("Getvar", func(c *amitest.Conn, req *ami.Message) {
				v := req.Get("Variable")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.HasPrefix(v, "EVAL("):
					got["EVAL"]++
					_ = c.Reply(req, "Success", "Variable", v, "Value", tc.answer(strings.TrimSuffix(strings.TrimPrefix(v, "EVAL("), ")")))
				case strings.HasPrefix(v, "DEVICE_STATE("):
					got["DEVICE_STATE"]++
					_ = c.Reply(req, "Success", "Variable", v, "Value", cmpOr(lamps[strings.TrimSuffix(strings.TrimPrefix(v, "DEVICE_STATE("), ")")], "UNKNOWN"))
				default:
					_ = c.Reply(req, "Error", "Message", "unexpected "+v)
				}
			})
			srv.Handle("PresenceState", func(c *amitest.Conn, req *ami.Message) {
				mu.Lock()
				got["PresenceState"]++
				mu.Unlock()
				p, ok := providers[req.Get("Provider")]
				if !ok {
					p.State = "not_set"
				}
				// as Asterisk 22 answers (docs/asterisk.md §5)
				_ = c.Reply(req, "Success", "Message", "Presence State", "State", p.State, "Message", p.Message, "PresenceMessage", p.Message)
			})
			con := fakeConcern(t, srv)
			devices, err := con.readDevices(context.Background(), map[string]bool{"Custom:DND1001": true, "Custom:PROFILE1001-1": true, "Custom:x${y}": true, "Custom:never": true})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"Custom:DND1001": "BUSY", "Custom:PROFILE1001-1": "NOT_INUSE", "Custom:x${y}": "INUSE"}; !maps.Equal(devices, want) {
				t.Errorf("lamps %v, want %v", devices, want)
			}
			presents, err := con.readPresence(context.Background(), map[string]bool{"CustomPresence:1001": true, "CustomPresence:never": true})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]presence.PresenceValue{"CustomPresence:1001": providers["CustomPresence:1001"]}; !maps.Equal(presents, want) {
				t.Errorf("presence %v, want %v", presents, want)
			}
			// One by one: the lamp that cannot be combined always; the rest when the
			// combined answer was not used.
			mu.Lock()
			defer mu.Unlock()
			if !maps.Equal(got, tc.actions) {
				t.Errorf("actions %v, want %v", got, tc.actions)
			}
			if con.combine.Load() != tc.keepsCombin {
				t.Errorf("combining after: %v, want %v", con.combine.Load(), tc.keepsCombin)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// evalLike answers an EVAL of DEVICE_STATE and PRESENCE_STATE terms as Asterisk does, from
// lamps and providers (a lamp or provider never set reads UNKNOWN, not_set); badMessage, when
// set, stands for every message instead of its base64.
func evalLike(lamps map[string]string, providers map[string]presence.PresenceValue, badMessage string) func(string) string {
	return func(expr string) string {
		var out []string
		for _, term := range strings.Split(expr, "&") {
			name, field, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(term, "${DEVICE_STATE("), "${PRESENCE_STATE("), ")}"), ",")
			switch {
			case term == combinedEnd:
				out = append(out, term)
			case strings.HasPrefix(term, "${DEVICE_STATE("):
				out = append(out, cmpOr(lamps[name], "UNKNOWN"))
			case field == "value":
				out = append(out, cmpOr(providers[name].State, "not_set"))
			case badMessage != "":
				out = append(out, badMessage)
			default:
				out = append(out, base64.StdEncoding.EncodeToString([]byte(providers[name].Message)))
			}
		}
		return strings.Join(out, "&")
	}
}

// fakeConcern is a blf concern whose client talks to srv.
func fakeConcern(t *testing.T, srv *amitest.Server) *Concern {
	t.Helper()
	client, err := ami.New(ami.Config{Addr: srv.Addr, Username: amitest.Username, Secret: amitest.Secret,
		DialTimeout: 2 * time.Second, PingInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for !client.Status().LoggedIn {
		if time.Now().After(deadline) {
			t.Fatal("the client never logged in to the fake server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	con, err := New(Options{AMI: client})
	if err != nil {
		t.Fatal(err)
	}
	return con
}
