package api

import "net/http"

// Instance is what GET /instance answers: this presenced instance, whether it leads (writes to
// Asterisk) or stands by, the leader it knows of, and its readiness (what /readyz says). The
// web app's admin page shows the same.
type Instance struct {
	// ID is this instance's id (instance_id).
	ID string `json:"id"`
	// Version is the version of presenced this instance runs.
	Version string `json:"version"`
	// Role is "leader" or "standby".
	Role string `json:"role"`
	// Leader is the leading instance's id, this one's when it leads; empty when none is known
	// (LeaderNote says why).
	Leader string `json:"leader,omitempty"`
	// LeaderEpoch is the leader's lease epoch, when known.
	LeaderEpoch int64 `json:"leader_epoch,omitempty"`
	// LeaderNote says what is special about the leadership now: an election under way, the
	// leader unknown (and why), or that this instance, chosen, waits for an earlier lease to
	// run out before it writes.
	LeaderNote string `json:"leader_note,omitempty"`
	// Ready is true when the instance can do its work; Checks says per part (ami, ari, store)
	// "ok" or why not.
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

var noInstance = &apiError{status: http.StatusServiceUnavailable, msg: "this API was built without the instance's health"}

// instance answers GET /instance (admin only): this instance and its leader.
func (h *Handler) instance(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.admin {
		return &apiError{status: http.StatusForbidden, msg: "only the admin sees the instance's health"}
	}
	if h.health == nil {
		return noInstance
	}
	in := h.health(r.Context())
	if in.Checks == nil {
		in.Checks = map[string]string{}
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}
