package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswerBytes bounds what the client reads of one answer.
const maxAnswerBytes = 32 << 20

// Client calls presenced's REST API.
type Client struct {
	// Base is presenced's address, e.g. http://127.0.0.1:8080.
	Base *url.URL
	// Token authenticates: as a Bearer token, or with HTTP Basic auth as User's token when
	// User is set (the only way for tokens presenced holds as hashes).
	Token, User string
	// HTTP does the requests; nil means a client with Timeout.
	HTTP *http.Client
}

// APIError is an answer of presenced that is not a success: its status and its message.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the answer's "error" (or its body when that is not JSON), Field the field it
	// names, if any.
	Message, Field string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %s (HTTP %d)", e.Method, e.Path, msg, e.Status)
}

// ConnError is a request that got no answer from presenced: refused, timed out, a name
// that does not resolve.
type ConnError struct {
	URL string
	Err error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach presenced at %s: %v", e.URL, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// Do sends a request with body (encoded as JSON when not nil) and returns the answer's body
// for a 2xx status; any other status is an *APIError, no answer a *ConnError.
func (c *Client) Do(ctx context.Context, method, path string, body any) ([]byte, error) {
	p, query, _ := strings.Cut(path, "?")
	u := c.Base.JoinPath(p)
	u.RawQuery = query
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request to %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "presencectl")
	switch {
	case c.Token != "" && c.User != "":
		req.SetBasicAuth(c.User, c.Token)
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &ConnError{URL: c.Base.String(), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, &ConnError{URL: c.Base.String(), Err: fmt.Errorf("read the answer to %s %s: %w", method, path, err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return b, nil
	}
	e := &APIError{Method: method, Path: u.Path, Status: resp.StatusCode}
	var eb struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		e.Message, e.Field = eb.Error, eb.Field
	} else {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	return nil, e
}

// Get decodes the answer of GET path into out and returns its body too.
func (c *Client) Get(ctx context.Context, path string, out any) ([]byte, error) {
	return c.call(ctx, http.MethodGet, path, nil, out)
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	b, err := c.Do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("%s %s: the answer is not what presencectl understands: %w", method, path, err)
		}
	}
	return b, nil
}

// unwrapURLError drops *url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timed out: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

// userPath is the API path of a user's resource: /api/v1/users/{user}/rest....
func userPath(user string, rest ...string) string {
	p := "/api/v1/users/" + url.PathEscape(user)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}
