// Package webhook is the presence concern that calls the webhooks of a profile switch: one
// HTTP POST of a JSON Payload per webhook operation.
//
// Webhooks are effects, not state: Observe reads nothing and a repair never repeats them.
// Each operation makes exactly one attempt, bounded by its timeout (Webhook.Timeout, default
// DefaultTimeout, at most MaxTimeout); there are no retries, so a slow or failing receiver
// cannot make presenced storm it (net/http itself resends a POST on a reused connection only
// when nothing of it was written, so a receiver never gets it twice). A 2xx answer is
// ResultApplied; anything else (another status, a redirect, a timeout, a connection error) is
// ResultFailed with the status or the reason. The default client follows no redirects.
// Outcomes and logs name the URL without its user info, query and fragment, which may hold
// secrets.
//
// # The request body
//
// The body is the JSON encoding of a Payload, made from the switch the operation reports
// (presence.Op.Event).
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// Limits and defaults.
const (
	// DefaultTimeout bounds a call whose Webhook.Timeout is empty.
	DefaultTimeout = 2 * time.Second
	// MaxTimeout bounds every call; longer timeouts are cut to it.
	MaxTimeout = time.Minute
	// DefaultMaxInFlight is Options.MaxInFlight when it is zero.
	DefaultMaxInFlight = 64
	// MaxResponseBody is how much of a response body is read (and then discarded, except
	// for the start of an error body quoted in the outcome).
	MaxResponseBody = 64 << 10
	// maxQuoted is how much of an error response body an outcome quotes.
	maxQuoted = 200
)

// Payload is the JSON body of a webhook call: which user switched from which profile to which,
// why and when.
//
//	{"user":"alice","extension":"1001","from":"available","to":"meeting",
//	 "info":"room 4","source":"feature_code","actor":"alice","at":"2026-11-05T10:41:07Z"}
//
// It is made from op.Event; an operation without one sends only user, extension and at (the
// time of the call). An event of another user than the one the operation is applied for fails
// the operation.
type Payload struct {
	// User is the user who switched.
	User presence.UserID `json:"user"`
	// Extension is the user's extension.
	Extension string `json:"extension"`
	// From is the ID of the profile left; empty when the user had none.
	From string `json:"from,omitempty"`
	// To is the ID of the profile entered.
	To string `json:"to,omitempty"`
	// Info is the additional info given with the switch.
	Info string `json:"info,omitempty"`
	// Source is what triggered the switch, e.g. feature_code, api, schedule.
	Source string `json:"source,omitempty"`
	// Actor is who switched: the user, "admin", a trigger's name.
	Actor string `json:"actor,omitempty"`
	// At is when the switch happened.
	At time.Time `json:"at"`
}

// Options configures a Concern.
type Options struct {
	// HTTPClient makes the calls. nil means a client of its own that does not follow
	// redirects. Its Timeout, if any, applies on top of each operation's timeout.
	HTTPClient *http.Client
	// Logger receives each call at Debug and failures at Warn. nil discards.
	Logger *slog.Logger
	// Registerer receives presenced_webhook_calls_total. nil means no metrics.
	Registerer prometheus.Registerer
	// MaxInFlight bounds the calls in progress at once over all concurrent Apply calls.
	// 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Now returns the current time, for Payload.At. nil means time.Now.
	Now func() time.Time
}

func (o Options) validate() error {
	if o.MaxInFlight < 0 {
		return fmt.Errorf("webhook: Options.MaxInFlight must not be negative, got %d", o.MaxInFlight)
	}
	return nil
}

// Concern calls webhooks. It implements presence.Concern and is safe for concurrent use.
type Concern struct {
	http *http.Client
	log  *slog.Logger
	sem  chan struct{}
	met  *metrics
	now  func() time.Time
}

var _ presence.Concern = (*Concern)(nil)

// New validates o and returns a Concern.
func New(o Options) (*Concern, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("webhook: Options.Registerer: %w", err)
	}
	return &Concern{http: hc, log: log.With("component", "webhook"), sem: make(chan struct{}, o.MaxInFlight), met: met, now: now}, nil
}

// Name implements presence.Concern: "webhook".
func (c *Concern) Name() string { return "webhook" }

// Kinds implements presence.Concern: webhook.
func (c *Concern) Kinds() []presence.OpKind { return []presence.OpKind{presence.OpWebhook} }

// Observe implements presence.Concern. Webhooks have no state to read: it does nothing.
func (c *Concern) Observe(context.Context, map[presence.UserID]*presence.Target, map[presence.UserID]*presence.Target) error {
	return nil
}

// Apply implements presence.Concern: it calls u's webhooks in order, one attempt each, and
// reports one outcome per operation. A failed call does not stop the next. Once ctx is done
// the remaining operations fail without a request.
func (c *Concern) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	out := make([]presence.Outcome, len(ops))
	for i, op := range ops {
		out[i] = c.apply(ctx, u, op)
	}
	return out
}

// Call results, the values of the "result" label of presenced_webhook_calls_total.
const (
	resultSuccess = "success" // 2xx
	resultStatus  = "status"  // another status
	resultTimeout = "timeout" // the operation's timeout expired
	resultError   = "error"   // no request made, connection or protocol error, ctx cancelled
)

func (c *Concern) apply(ctx context.Context, u *presence.User, op presence.Op) presence.Outcome {
	if op.Kind != presence.OpWebhook {
		return presence.Failed(op, fmt.Errorf("webhook: cannot apply %s operations", op.Kind))
	}
	if op.Webhook == nil {
		c.met.count(resultError)
		return presence.Failed(op, errors.New("webhook: operation has no webhook"))
	}
	target, err := parseURL(op.Webhook.URL)
	if err != nil {
		c.met.count(resultError)
		return presence.Failed(op, fmt.Errorf("webhook: %w", err))
	}
	where := display(target)
	timeout, err := parseTimeout(op.Webhook.Timeout)
	if err != nil {
		c.met.count(resultError)
		return presence.Failed(op, fmt.Errorf("webhook %s: %w", where, err))
	}
	body, err := c.body(u, op.Event)
	if err != nil {
		c.met.count(resultError)
		return presence.Failed(op, fmt.Errorf("webhook %s: %w", where, err))
	}

	result, err := c.call(ctx, target.String(), timeout, body)
	c.met.count(result)
	log := c.log.With("user", userID(u), "url", where, "result", result)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "webhook failed", slog.String("error", err.Error()))
		return presence.Failed(op, fmt.Errorf("webhook %s: %w", where, err))
	}
	log.LogAttrs(ctx, slog.LevelDebug, "webhook called")
	return presence.Outcome{Op: op, Result: presence.ResultApplied}
}

// call makes the one attempt and returns its metric result and, unless it got a 2xx, why not.
func (c *Concern) call(parent context.Context, target string, timeout time.Duration, body []byte) (string, error) {
	if err := parent.Err(); err != nil {
		return resultError, err
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return classify(parent, ctx, timeout, ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return resultError, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "presenced-webhook")
	resp, err := c.http.Do(req)
	if err != nil {
		return classify(parent, ctx, timeout, stripURL(err))
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the body so that the connection can be reused. For a 2xx a
	// read error does not matter: the receiver has taken the call.
	got, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resultStatus, fmt.Errorf("status %s%s", resp.Status, quote(got))
	}
	return resultSuccess, nil
}

// classify names a failed request: "timeout" when the operation's own deadline (ctx) expired
// rather than the caller's (parent).
func classify(parent, ctx context.Context, timeout time.Duration, err error) (string, error) {
	if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return resultTimeout, fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return resultError, err
}

// body builds the request body from the switch event (see Payload).
func (c *Concern) body(u *presence.User, ev *presence.SwitchEvent) ([]byte, error) {
	var p Payload
	if ev != nil {
		p = Payload{User: ev.User, Extension: ev.Extension, From: ev.From, To: ev.To, Info: ev.Info,
			Source: string(ev.Source), Actor: ev.Actor, At: ev.At.UTC()}
	}
	if u != nil {
		if p.User != "" && p.User != u.ID {
			return nil, fmt.Errorf("payload is for user %q, not %q", p.User, u.ID)
		}
		if p.User == "" {
			p.User = u.ID
		}
		if p.Extension == "" {
			p.Extension = u.Extension
		}
	}
	if p.At.IsZero() {
		p.At = c.now().UTC()
	}
	return json.Marshal(p)
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", stripURL(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s is not an http(s) URL", display(u))
	}
	return u, nil
}

func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q is not a positive duration", s)
	}
	return min(d, MaxTimeout), nil
}

// display is u without user info, query and fragment, which may hold secrets: what outcomes
// and logs show.
func display(u *url.URL) string {
	v := *u
	v.User, v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = nil, "", false, "", ""
	return v.String()
}

// stripURL drops the URL a *url.Error quotes (it may hold secrets), keeping the reason.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// quote is the start of an error response body, for the outcome, or "".
func quote(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if s == "" {
		return ""
	}
	if len(s) > maxQuoted {
		s = strings.ToValidUTF8(s[:maxQuoted], "") + "..."
	}
	return fmt.Sprintf(": %q", s)
}

func userID(u *presence.User) string {
	if u == nil {
		return ""
	}
	return string(u.ID)
}
