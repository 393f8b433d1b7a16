package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// decode reads the request body, at most h.maxBody bytes, into v: one JSON object whose fields
// v knows, nothing after it.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apiError{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("body larger than %d bytes", tooBig.Limit)}
	}
	if err != nil {
		return &apiError{status: http.StatusBadRequest, msg: "reading the body: " + err.Error()}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return &apiError{status: http.StatusBadRequest, msg: "the body is empty; want a JSON object"}
	}
	if trimmed[0] != '{' {
		return &apiError{status: http.StatusBadRequest, msg: "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &apiError{status: http.StatusBadRequest, msg: "unexpected data after the JSON object"}
	}
	return nil
}

// decodeError describes a JSON decoding error in the client's terms, naming the field when
// it can.
func decodeError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return &apiError{status: http.StatusBadRequest,
			msg: fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{status: http.StatusBadRequest, msg: "malformed JSON: the body ends early"}
	case errors.As(err, &typ):
		field := jsonPath(typ.Field)
		msg := fmt.Sprintf("want %s, got %s", jsonType(typ.Type), typ.Value)
		if field != "" {
			msg = field + ": " + msg
		}
		return &apiError{status: http.StatusBadRequest, msg: msg, field: field}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("unknown field %q", name), field: name}
	}
	// A type's own UnmarshalJSON refused the value, e.g. presence.QueueSelector: its message
	// starts with the field's name.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	field, _, _ := strings.Cut(msg, ": ")
	if strings.ContainsAny(field, " \"") {
		field = ""
	}
	return &apiError{status: http.StatusBadRequest, msg: msg, field: field}
}

// jsonPath drops the Go names of embedded structs that encoding/json puts in a field path
// ("Profile.on_enter.ring_time"): every JSON name of the API's bodies is lower case.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && (p[0] < 'A' || p[0] > 'Z') {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}
