package api

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// openAPIDoc is the part of an OpenAPI document the tests look at.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Servers []struct {
		URL string `json:"url"`
	} `json:"servers"`
	Info struct {
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

// TestOpenAPIDocumentCarriesTheVersion: info.version is the serving presenced's version; the
// rest of the document is the embedded one.
func TestOpenAPIDocumentCarriesTheVersion(t *testing.T) {
	a := newTestAPIWith(t, fixtureUsers(), func(o *Options) { o.Version = "v1.2.3-4-gabcdef" })
	var served, embedded map[string]any
	a.must(t, "GET", "/api/v1/openapi.json", "", "", 200, &served)
	if err := json.Unmarshal([]byte(openAPIDocument), &embedded); err != nil {
		t.Fatal(err)
	}
	if v := served["info"].(map[string]any)["version"]; v != "v1.2.3-4-gabcdef" {
		t.Fatalf("info.version %v", v)
	}
	embedded["info"].(map[string]any)["version"] = "v1.2.3-4-gabcdef"
	if !reflect.DeepEqual(served, embedded) {
		t.Fatal("the served document differs from the embedded one beyond info.version")
	}
}

// TestOpenAPIDocumentIsWellFormed: kin-openapi loads and validates the document (every $ref
// resolves, every path parameter is declared, the schemas are JSON Schema 2020-12), and it
// has what a client generator and a reader look for: a license, servers, tags on every
// operation, each of them described at the top.
func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	v, err := openAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := parseOpenAPI(t) // the servers, which the validator's copy leaves out for routing
	kin := v.Document()
	if !strings.HasPrefix(kin.OpenAPI, "3.1") || kin.Info.Title == "" || kin.Info.Version == "" {
		t.Fatalf("openapi %q, info %+v", kin.OpenAPI, kin.Info)
	}
	if l := kin.Info.License; l == nil || l.Name == "" {
		t.Errorf("no license: %+v", l)
	} else if l.Extensions["identifier"] != "Apache-2.0" && !strings.Contains(l.Name, "Apache") {
		t.Errorf("license %+v, want Apache-2.0 (LICENSE)", l)
	}
	if len(doc.Servers) == 0 {
		t.Error("no servers")
	}
	if s := kin.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("bearer security scheme: %+v", s)
	}
	tags := map[string]bool{}
	for _, tg := range kin.Tags {
		if tg.Description == "" {
			t.Errorf("tag %s has no description", tg.Name)
		}
		tags[tg.Name] = true
	}
	for path, item := range kin.Paths.Map() {
		for method, op := range item.Operations() {
			if len(op.Tags) == 0 {
				t.Errorf("%s %s has no tag", method, path)
			}
			for _, tg := range op.Tags {
				if !tags[tg] {
					t.Errorf("%s %s: tag %q is not among the document's tags", method, path, tg)
				}
			}
		}
	}
}

// TestOpenAPIDescribesEveryRoute: every route the handler serves is in the document, and
// every operation of the document is served, public exactly when the document says so (that
// each declares its path's parameters kin-openapi's validation checks).
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	a := newTestAPI(t)
	v, err := openAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	var served, documented []string
	for _, rt := range a.h.routes {
		served = append(served, rt.pattern())
	}
	for path, item := range v.Document().Paths.Map() {
		for method, op := range item.Operations() {
			documented = append(documented, method+" "+path)
			if op.Responses.Len() == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
			public := op.Security != nil && len(*op.Security) == 0
			if rt := a.h.route(method, path); rt != nil && public != (rt.access == accessPublic) {
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
		if !slices.Contains(served, d) && !servedBeside[d] {
			t.Errorf("documented but not served: %s", d)
		}
	}
}

// servedBeside are the operations of the document that presenced serves beside the API, on
// its own mux through Handler.Admin (cmd/presenced, whose tests validate their answers).
var servedBeside = map[string]bool{"POST /-/reload": true}

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
		"PresenceValue":         reflect.TypeFor[presence.PresenceValue](),
		"Webhook":               reflect.TypeFor[presence.Webhook](),
		"Target":                reflect.TypeFor[presence.Desired](), // desired, observed and adopted: the desired's fields
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
		"CalendarStatus":        reflect.TypeFor[calendar.Status](),
		"CalendarItem":          reflect.TypeFor[calendar.Item](),
		"Instance":              reflect.TypeFor[Instance](),
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
	// QueueMember writes its Membership as two flags (its MarshalJSON): its fields are those
	// its members of every membership encode, each field set.
	var encoded []string
	for _, m := range []presence.Membership{presence.MembershipManaged, presence.MembershipStatic, presence.MembershipOptional} {
		b, err := json.Marshal(presence.QueueMember{Interface: "i", MemberName: "n", StateInterface: "s", Penalty: 1,
			Paused: true, Reason: "r", Membership: m})
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		for f := range fields {
			if !slices.Contains(encoded, f) {
				encoded = append(encoded, f)
			}
		}
	}
	slices.Sort(encoded)
	if schema, ok := doc.Components.Schemas["QueueMember"]; !ok {
		t.Errorf("schema QueueMember missing")
	} else if documented := slices.Sorted(maps.Keys(schema.Properties)); !slices.Equal(documented, encoded) {
		t.Errorf("schema QueueMember has properties %v; presence.QueueMember encodes %v", documented, encoded)
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
