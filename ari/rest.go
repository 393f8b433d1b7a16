package ari

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of a REST response body is read.
const maxResponseBytes = 4 << 20

// RequestError is an ARI REST request that Asterisk answered with a non-2xx
// status, e.g. 404 for a channel that is gone or 409 for a channel that is
// not in a Stasis application. Use errors.As to inspect it.
type RequestError struct {
	Method     string
	Path       string // path below Config.URL, without the query
	StatusCode int
	Message    string // Asterisk's "message", or the start of the body
}

// Error implements error.
func (e *RequestError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s %s: status %d", e.Method, e.Path, e.StatusCode)
	}
	return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// newHTTPClient returns the client for REST requests. It has its own
// transport (http.DefaultTransport is never touched) with every phase
// bounded; the per-request context is the primary bound. It opens at most
// maxConns connections and keeps as many for reuse, for less than
// Asterisk keeps them open (idleConnTimeout).
func newHTTPClient(timeout time.Duration, maxConns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	tr.MaxConnsPerHost = maxConns
	tr.MaxIdleConnsPerHost = maxConns
	tr.IdleConnTimeout = idleConnTimeout
	return &http.Client{Transport: tr, Timeout: timeout}
}

// do performs one REST request under ctx and Config.RequestTimeout,
// whichever ends first, and decodes a JSON response into out unless out is
// nil. path is below Config.URL and its variable parts must already be
// escaped (see seg). The caller wraps the error with what failed.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, out any) (err error) {
	start := time.Now()
	defer func() {
		c.metrics.requestDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	}()

	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	u := c.cfg.baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		return err // a *url.Error naming method and URL; no credentials in it
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxResponseBytes)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(body)
		rerr := &RequestError{Method: method, Path: path, StatusCode: resp.StatusCode}
		var m struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(b, &m) == nil && (m.Message != "" || m.Error != "") {
			rerr.Message = m.Message + m.Error
		} else if text := strings.TrimSpace(string(b[:min(len(b), 200)])); !strings.HasPrefix(text, "<") {
			rerr.Message = text // not an HTML error page (Asterisk serves those before res_ari is loaded)
		}
		return rerr
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, body) // lets the connection be reused
		return nil
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// seg escapes one path segment (a channel id, a variable name, …); the
// library this package replaces concatenated them unescaped.
func seg(s string) string { return url.PathEscape(s) }
