package openapicheck

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const doc = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "paths": {
    "/things/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "get": {
        "responses": {
          "200": {"description": "a thing", "content": {"application/json": {"schema": {
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"type": "string"}}}}}}},
          "404": {"description": "none"}
        }
      }
    }
  }
}`

// TestTransport: answers from a server on any address are checked against the document;
// those that do not match are reported, naming what is wrong; paths the document does not
// have are not.
func TestTransport(t *testing.T) {
	v, err := New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.EscapedPath() {
		case "/things/good":
			w.Write([]byte(`{"items":["a"]}`))
		case "/things/null":
			w.Write([]byte(`{"items":null}`))
		case "/things/teapot", "/things/a%2Fb":
			w.WriteHeader(http.StatusTeapot)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path, want string
	}{
		{"/things/good", ""},
		{"/things/null", "items"},
		{"/things/teapot", "418"},
		{"/elsewhere", ""},
		{"/things/a%2Fb", "418"}, // an escaped slash in a parameter is still that operation's
	} {
		var got []error
		c := &http.Client{Transport: v.Transport(nil, func(err error) { got = append(got, err) })}
		resp, err := c.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: reported %v", tc.path, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0].Error(), tc.want)):
			t.Errorf("%s: reported %v, want one naming %q", tc.path, got, tc.want)
		}
	}
	req := httptest.NewRequest("GET", "/elsewhere", nil)
	if err := v.Check(req, 200, http.Header{}, nil); !errors.Is(err, ErrNoRoute) {
		t.Errorf("Check of an undocumented path: %v", err)
	}
}

func TestNewRefusesAnInvalidDocument(t *testing.T) {
	bad := strings.Replace(doc, `"items": {"type": "string"}`, `"items": {"$ref": "#/components/schemas/Nope"}`, 1)
	if _, err := New([]byte(bad)); err == nil {
		t.Fatal("a document with a dangling $ref loaded")
	}
}
