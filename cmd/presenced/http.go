package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presenced/presenced/api"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/web"
)

// readiness is the body of /readyz: whether presenced can do its work, and per part why not.
type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
	// Role says whether this instance writes to Asterisk: "leader", or "standby" (a standby
	// is ready: it serves the API), with the leader it knows of.
	Role   string `json:"role"`
	Leader string `json:"leader,omitempty"`
	// leader is the leader's id, epoch and note, of which Leader is the words.
	leader leaderInfo
}

// leaderInfo is the leader as an instance knows it (api.Instance's leader fields).
type leaderInfo struct {
	id    string
	epoch int64
	note  string
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("POST /-/reload", d.api.Admin(http.MethodPost, "/-/reload", d.serveReload))
	mux.Handle("/api/v1/", d.api)
	mux.Handle("/", d.web) // the web app: every path the others do not serve
	return mux
}

// instance is this instance's health: GET /api/v1/instance, and the web app's admin page
// (health).
func (d *daemon) instance(ctx context.Context) api.Instance {
	rd := d.readiness(ctx)
	return api.Instance{ID: d.cfg.InstanceID, Version: version, Role: rd.Role, Leader: rd.leader.id,
		LeaderEpoch: rd.leader.epoch, LeaderNote: rd.leader.note, Ready: rd.Ready, Checks: rd.Checks}
}

// health is this instance's summary for the web app's admin page: what GET /api/v1/instance
// answers.
func (d *daemon) health(ctx context.Context) web.Health {
	in := d.instance(ctx)
	return web.Health{Instance: in.ID, Version: in.Version, Role: in.Role, Leader: in.Leader, LeaderEpoch: in.LeaderEpoch,
		LeaderNote: in.LeaderNote, Ready: in.Ready, Checks: in.Checks}
}

// readyz answers 200 when AMI is logged in to a fully booted Asterisk, ARI is connected and the
// store answers; otherwise 503, the body saying which part is not ready and why.
func (d *daemon) readyz(w http.ResponseWriter, r *http.Request) {
	rd := d.readiness(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rd)
}

func (d *daemon) readiness(ctx context.Context) readiness {
	rd := readiness{Ready: true, Checks: map[string]string{}}
	fail := func(part, why string) {
		rd.Ready = false
		rd.Checks[part] = why
	}

	switch s := d.ami.Status(); {
	case !s.Connected:
		fail("ami", "not connected to "+d.cfg.Asterisk.AMI.Address+withReason(s.LastError))
	case !s.LoggedIn:
		fail("ami", "connected but not logged in"+withReason(s.LastError))
	case !s.FullyBooted:
		fail("ami", "logged in, waiting for Asterisk to be fully booted")
	default:
		rd.Checks["ami"] = "ok"
		if r := d.amiRead.Status(); !r.FullyBooted {
			fail("ami", "read connection not ready"+withReason(r.LastError))
		}
		for _, g := range d.gatedSessions() { // the first not ready is named
			if w := g.c.Status(); !w.FullyBooted {
				fail("ami", g.name+" not ready"+withReason(w.LastError))
				break
			}
		}
	}

	if s := d.ari.Status(); s.Connected {
		rd.Checks["ari"] = "ok"
	} else {
		fail("ari", "not connected to "+d.cfg.Asterisk.ARI.URL+withReason(s.LastError))
	}

	pingCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := d.store.Ping(pingCtx); err != nil {
		fail("store", err.Error())
	} else if err := d.states.CheckSchema(pingCtx); err != nil {
		fail("store", err.Error())
	} else {
		rd.Checks["store"] = "ok"
	}
	if epoch, ok := d.elector.Leading(); ok {
		rd.Role, rd.Leader = "leader", fmt.Sprintf("%s (epoch %d)", d.cfg.InstanceID, epoch)
		rd.leader = leaderInfo{id: d.cfg.InstanceID, epoch: int64(epoch)}
	} else {
		rd.Role = "standby"
		switch who, epoch, err := d.elector.Leader(pingCtx); {
		case errors.Is(err, leader.ErrNoLeader):
			rd.Leader = "none: an election is under way"
			rd.leader.note = "an election is under way"
		case err != nil:
			rd.Leader = "unknown: " + err.Error()
			rd.leader.note = "unknown: " + err.Error()
		case who == d.cfg.InstanceID:
			rd.leader = leaderInfo{id: who, epoch: int64(epoch), note: "waiting for an earlier lease to run out before it writes"}
			rd.Leader = fmt.Sprintf("%s (this instance, %s)", who, rd.leader.note)
		default:
			rd.Leader = fmt.Sprintf("%s (epoch %d)", who, epoch)
			rd.leader = leaderInfo{id: who, epoch: int64(epoch)}
		}
	}
	return rd
}

func withReason(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}
