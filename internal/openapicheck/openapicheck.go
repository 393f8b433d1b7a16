// Package openapicheck validates presenced's live HTTP answers against its OpenAPI document
// (api/openapi.json) with kin-openapi: the status must be one the operation lists, and a JSON
// body must match the response's schema. The API's tests run every answer through it, and
// presencectl's tests every answer of a real presenced.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// ErrNoRoute is the error of an answer to a request the document has no operation for (an
// unknown path, a method a path does not serve): there is nothing to check it against.
var ErrNoRoute = errors.New("openapicheck: the document has no operation for this request")

// Validator checks answers against one OpenAPI document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

// New loads and validates the document. Its servers are ignored for routing: answers are
// matched by path and method alone, whatever address served them.
func New(document []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: load the document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapicheck: the document is not valid OpenAPI: %w", err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: route the document: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// Document is the loaded document.
func (v *Validator) Document() *openapi3.T { return v.doc }

// Check validates an answer (status, headers, body) to req. It returns ErrNoRoute for a
// request the document does not describe, and nil or the problems found otherwise. The
// request itself is not validated: tests send invalid ones on purpose.
func (v *Validator) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil && req.URL.RawPath != "" {
		// An escaped slash in a path parameter (triggers/a%2Fb): the router matches the
		// decoded path, where it is a separator; ServeMux matches segments of the escaped one.
		r := req.Clone(req.Context())
		r.URL.Path, r.URL.RawPath = req.URL.EscapedPath(), ""
		route, params, err = v.router.FindRoute(r)
	}
	if err != nil {
		return ErrNoRoute
	}
	if strings.HasPrefix(header.Get("Content-Type"), "text/event-stream") {
		// A stream: only its status and media type can be checked.
		if route.Operation.Responses.Status(status) == nil && route.Operation.Responses.Default() == nil {
			return fmt.Errorf("%s %s: status %d is not in the document", req.Method, route.Path, status)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d, not as %s says: %w\nbody: %s", req.Method, req.URL.Path, status,
			route.Path, err, truncate(body, 2000))
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Transport is an http.RoundTripper that checks every answer it carries and hands the
// problems to report (from the goroutine of the request). Answers to requests the document
// does not describe are not reported.
func (v *Validator) Transport(next http.RoundTripper, report func(error)) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{v: v, next: next, report: report}
}

type transport struct {
	v      *Validator
	next   http.RoundTripper
	report func(error)
	mu     sync.Mutex
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if cerr := t.v.Check(req, resp.StatusCode, resp.Header, body); cerr != nil && !errors.Is(cerr, ErrNoRoute) {
		t.mu.Lock()
		t.report(cerr)
		t.mu.Unlock()
	}
	return resp, nil
}
