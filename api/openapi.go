package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// openAPIDocument is the OpenAPI 3.1 description of the API, served at /api/v1/openapi.json
// with info.version set to the version of the presenced serving it (documentFor).
// openapi_test.go keeps it in line with the routes and the Go types the API encodes, and
// every answer of the API's tests is validated against it (kin-openapi).
//
//go:embed openapi.json
var openAPIDocument string

// documentFor is the OpenAPI document with info.version set to version; the embedded one
// when version is empty.
func documentFor(version string) ([]byte, error) {
	if version == "" {
		return []byte(openAPIDocument), nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(openAPIDocument), &doc); err != nil {
		return nil, fmt.Errorf("api: openapi.json: %w", err)
	}
	var info map[string]json.RawMessage
	if err := json.Unmarshal(doc["info"], &info); err != nil {
		return nil, fmt.Errorf("api: openapi.json info: %w", err)
	}
	v, err := json.Marshal(version)
	if err != nil {
		return nil, err
	}
	info["version"] = v
	if doc["info"], err = json.Marshal(info); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}
