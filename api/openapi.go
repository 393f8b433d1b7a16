package api

import _ "embed"

// openAPIDocument is the OpenAPI 3.1 description of the API, served at /api/v1/openapi.json.
// openapi_test.go keeps it in line with the routes and the Go types the API encodes.
//
//go:embed openapi.json
var openAPIDocument string
