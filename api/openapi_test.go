package api

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// openAPIDoc is the part of an OpenAPI document the tests look at.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title   string `json:"title"`
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

func parseOpenAPI(t *testing.T) (openAPIDoc, map[string]any) {
	t.Helper()
	if !json.Valid([]byte(openAPIDocument)) {
		t.Fatal("openapi.json is not valid JSON")
	}
	var doc openAPIDoc
	var raw map[string]any
	if err := json.Unmarshal([]byte(openAPIDocument), &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(openAPIDocument), &raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

func TestOpenAPIDocumentIsServedWithoutAuth(t *testing.T) {
	a := newTestAPI(t)
	rec := a.must(t, "GET", "/api/v1/openapi.json", "", "", 200, nil)
	if rec.Body.String() != openAPIDocument || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("served %q (%s)", rec.Header().Get("Content-Type"), rec.Body.String()[:min(80, rec.Body.Len())])
	}
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	doc, raw := parseOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" || len(doc.Paths) == 0 {
		t.Fatalf("openapi %q, info %+v, %d paths", doc.OpenAPI, doc.Info, len(doc.Paths))
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearer security scheme: %+v", s)
	}
	// Every $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if k == "$ref" {
					ref, _ := sub.(string)
					if resolve(raw, ref) == nil {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(sub, at+"/"+k)
			}
		case []any:
			for _, sub := range v {
				walk(sub, at)
			}
		}
	}
	walk(raw, "#")
}

func resolve(doc map[string]any, ref string) any {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPIDescribesEveryRoute: every route the handler serves is in the document, every
// operation of the document is served, and each declares its path's parameters.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	a := newTestAPI(t)
	doc, raw := parseOpenAPI(t)
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

	var served, documented []string
	for _, rt := range a.h.routes {
		served = append(served, rt.pattern())
	}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		var pathLevel []openAPIParam
		if p, ok := item["parameters"]; ok {
			if err := json.Unmarshal(p, &pathLevel); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, opRaw := range item {
			if !slices.Contains(methods, method) {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			var op struct {
				Parameters []openAPIParam             `json:"parameters"`
				Responses  map[string]json.RawMessage `json:"responses"`
				Security   *[]any                     `json:"security"`
			}
			if err := json.Unmarshal(opRaw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			var declared []string
			for _, p := range append(slices.Clone(pathLevel), op.Parameters...) {
				if p.Ref != "" {
					m, _ := resolve(raw, p.Ref).(map[string]any)
					p.Name, _ = m["name"].(string)
					p.In, _ = m["in"].(string)
				}
				if p.In == "path" {
					declared = append(declared, p.Name)
				}
			}
			var inPath []string
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				inPath = append(inPath, m[1])
			}
			slices.Sort(declared)
			slices.Sort(inPath)
			if !slices.Equal(declared, inPath) {
				t.Errorf("%s %s declares path parameters %v, the path has %v", method, path, declared, inPath)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
			public := op.Security != nil && len(*op.Security) == 0
			if rt := a.h.route(strings.ToUpper(method), path); rt != nil && public != (rt.access == accessPublic) {
				t.Errorf("%s %s: documented public=%v, served public=%v", method, path, public, rt.access == accessPublic)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("served but not documented: %s", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("documented but not served: %s", d)
		}
	}
}

// route returns the route of method and path pattern.
func (h *Handler) route(method, path string) *route {
	for i := range h.routes {
		if h.routes[i].method == method && h.routes[i].path == path {
			return &h.routes[i]
		}
	}
	return nil
}

// TestOpenAPISchemasMatchTypes: each schema lists exactly the JSON fields of the Go type the
// API encodes (or decodes) for it, so a field added to presence shows up here.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc, _ := parseOpenAPI(t)
	for name, typ := range map[string]reflect.Type{
		"Error":                 reflect.TypeFor[errorBody](),
		"Problem":               reflect.TypeFor[problem](),
		"SwitchRequest":         reflect.TypeFor[switchBody](),
		"SwitchEvent":           reflect.TypeFor[presence.SwitchEvent](),
		"SwitchResult":          reflect.TypeFor[switchAnswer](),
		"Outcome":               reflect.TypeFor[presence.Outcome](),
		"Op":                    reflect.TypeFor[presence.Op](),
		"QueueMember":           reflect.TypeFor[presence.QueueMember](),
		"PresenceValue":         reflect.TypeFor[presence.PresenceValue](),
		"Webhook":               reflect.TypeFor[presence.Webhook](),
		"Target":                reflect.TypeFor[presence.Target](),
		"User":                  reflect.TypeFor[presence.User](),
		"Device":                reflect.TypeFor[presence.Device](),
		"QueueMembership":       reflect.TypeFor[presence.QueueMembership](),
		"UserStatus":            reflect.TypeFor[userStatusView](),
		"Profile":               reflect.TypeFor[profileView](),
		"Action":                reflect.TypeFor[presence.Action](),
		"ProfileList":           reflect.TypeFor[profileList](),
		"PresenceEntry":         reflect.TypeFor[presenceView](),
		"PresenceList":          reflect.TypeFor[presenceList](),
		"JournalEntry":          reflect.TypeFor[presence.JournalEntry](),
		"Journal":               reflect.TypeFor[journalView](),
		"Schedule":              reflect.TypeFor[presence.Schedule](),
		"Activation":            reflect.TypeFor[trigger.Activation](),
		"Change":                reflect.TypeFor[trigger.Change](),
		"TriggerRequest":        reflect.TypeFor[triggerBody](),
		"TriggerResult":         reflect.TypeFor[trigger.ExternalResult](),
		"Difference":            reflect.TypeFor[presence.Difference](),
		"Warning":               reflect.TypeFor[presence.Warning](),
		"PasswordRequest":       reflect.TypeFor[passwordBody](),
		"PasswordLinkRequest":   reflect.TypeFor[linkBody](),
		"PasswordLink":          reflect.TypeFor[linkView](),
		"UsePasswordLink":       reflect.TypeFor[useLinkBody](),
		"UserSchedule":          reflect.TypeFor[scheduleView](),
		"Occurrence":            reflect.TypeFor[occurrenceView](),
		"ScheduleEntryRequest":  reflect.TypeFor[scheduleBody](),
		"ScheduleSettings":      reflect.TypeFor[scheduleSettings](),
		"PersonalScheduleEntry": reflect.TypeFor[trigger.PersonalEntry](),
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var documented []string
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		slices.Sort(documented)
		if want := jsonFields(typ); !slices.Equal(documented, want) {
			t.Errorf("schema %s has properties %v; %s encodes %v", name, documented, typ, want)
		}
	}
	// The body of PUT .../profiles/{id} decodes the same fields as Profile encodes.
	if got, want := jsonFields(reflect.TypeFor[profileBody]()), jsonFields(reflect.TypeFor[profileView]()); !slices.Equal(got, want) {
		t.Errorf("profile body decodes %v, Profile encodes %v", got, want)
	}
}

// jsonFields lists the JSON names encoding/json uses for struct type t, sorted.
func jsonFields(t reflect.Type) []string {
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for f := range t.Fields() {
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			seen[name] = true
		}
	}
	walk(t)
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
