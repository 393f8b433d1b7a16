package web

import (
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// actionValues are the values the per-kind form test gives each field of an action row, as
// the form posts them, and what the action then holds.
var actionValues = map[string]struct {
	form []string
	// check reports whether the parsed action holds the value.
	check func(a presence.Action) bool
}{
	"queues": {[]string{"support, sales"}, func(a presence.Action) bool {
		return slices.Equal(a.Queues, presence.QueueSelector{"support", "sales"})
	}},
	"reason":     {[]string{"Focus"}, func(a presence.Action) bool { return a.Reason == "Focus" }},
	"order":      {[]string{"sequential"}, func(a presence.Action) bool { return a.Order == presence.RingSequential }},
	"ring_time":  {[]string{"15"}, func(a presence.Action) bool { return a.RingTime == 15 }},
	"ring_times": {[]string{"10, 25"}, func(a presence.Action) bool { return slices.Equal(a.RingTimes, []int{10, 25}) }},
	"type":       {[]string{"busy"}, func(a presence.Action) bool { return a.Type == presence.ForwardBusy }},
	"to":         {[]string{"+4930123456"}, func(a presence.Action) bool { return a.To == "+4930123456" }},
	"value":      {[]string{"1001"}, func(a presence.Action) bool { return a.Value == "1001" }},
	"device":     {[]string{"Custom:desk-7"}, func(a presence.Action) bool { return a.Device == "Custom:desk-7" }},
	"state":      {[]string{"INUSE"}, func(a presence.Action) bool { return a.State == "INUSE" }},
	"message":    {[]string{"back soon"}, func(a presence.Action) bool { return a.Message == "back soon" }},
	"scope":      {[]string{"user"}, func(a presence.Action) bool { return a.Scope == "user" }},
	"name":       {[]string{"MYVAR"}, func(a presence.Action) bool { return a.Name == "MYVAR" }},
	"families": {[]string{"desk", "mobile"}, func(a presence.Action) bool {
		return slices.Equal(a.Families, []presence.Family{presence.FamilyDesk, presence.FamilyMobile})
	}},
}

// TestActionFormsPerKind: for every action kind the editor has a form for, each of its
// fields (and only those) is read from the form into the action, and shown again in the row
// with its value; "on" unticked is off, ticked on; a row's enabled box unticked disables it.
func TestActionFormsPerKind(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, _, tok := c.get("/profiles/new")
	var allFields []string
	for _, k := range slices.Sorted(maps.Keys(kindNames)) {
		for _, f := range presence.ActionFields(k) {
			if !slices.Contains(allFields, f) {
				allFields = append(allFields, f)
			}
		}
	}
	tag := func(body, field string) string {
		return regexp.MustCompile(`<(?:input|select)[^>]*name="on_enter\.0\.` + field + `"[^>]*>`).FindString(body)
	}
	for _, kind := range slices.Sorted(maps.Keys(kindNames)) {
		fields, ok := actionFields(kind)
		if !ok {
			t.Errorf("%s: the editor names a kind it has no form for", kind)
			continue
		}
		for _, on := range []bool{true, false} {
			if !slices.Contains(fields, "on") && !on {
				continue
			}
			name := string(kind)
			if !on {
				name += " off"
			}
			t.Run(name, func(t *testing.T) {
				f := url.Values{"csrf": {tok}, "op": {"up on_enter 0"}, "id": {"k"}, "name": {"K"}, "visibility": {"public"},
					"on_enter.n": {"1"}, "on_enter.0.action": {string(kind)}, "on_exit.n": {"0"}}
				if on {
					f.Set("on_enter.0.enabled", "on") // the off case is disabled too
				}
				for _, field := range fields {
					if field == "on" {
						if on {
							f.Set("on_enter.0.on", "on")
						}
						continue
					}
					v, ok := actionValues[field]
					if !ok {
						t.Fatalf("no test value for field %s", field)
					}
					f["on_enter.0."+field] = v.form
				}
				// Fields of other kinds are ignored.
				for _, field := range allFields {
					if !slices.Contains(fields, field) && field != "on" {
						f["on_enter.0."+field] = actionValues[field].form
					}
				}
				p, err := profileFromForm(f)
				if err != nil || len(p.OnEnter) != 1 {
					t.Fatalf("profileFromForm: %v %+v", err, p)
				}
				act := p.OnEnter[0]
				if act.Kind != kind || act.IsEnabled() != on {
					t.Errorf("kind %s enabled %v, want %s %v", act.Kind, act.IsEnabled(), kind, on)
				}
				for _, field := range allFields {
					if field == "on" {
						if slices.Contains(fields, "on") && act.IsOn() != on {
							t.Errorf("on: %v, want %v", act.IsOn(), on)
						}
						if !slices.Contains(fields, "on") && act.On != nil {
							t.Errorf("on set on a kind without it")
						}
						continue
					}
					if got := actionValues[field].check(act); got != slices.Contains(fields, field) {
						t.Errorf("field %s read %v, want %v: %+v", field, got, !got, act)
					}
				}

				// The editor shows the row again (the move up of the first row changes nothing).
				code, body, _ := c.post("/profiles/new", f)
				if code != http.StatusOK || !strings.Contains(body, `id="on_enter-0-row"`) {
					t.Fatalf("editor: %d %s", code, body)
				}
				row := between(body, `id="on_enter-0-row"`, `<div class="abuttons">`)
				if !strings.Contains(row, "<strong>"+kindNames[kind]+"</strong>") {
					t.Errorf("the row does not name the kind %q: %s", kindNames[kind], row)
				}
				if off := strings.Contains(body, `class="arow off"`); off == on {
					t.Errorf("the row shown disabled %v, enabled %v", off, on)
				}
				for _, field := range allFields {
					el := tag(row, field)
					if !slices.Contains(fields, field) {
						if el != "" {
							t.Errorf("a %s field on a %s row: %s", field, kind, el)
						}
						continue
					}
					switch field {
					case "on":
						if checked := strings.Contains(el, "checked"); el == "" || checked != on {
							t.Errorf("on: %q, want checked %v", el, on)
						}
					case "families":
						for _, fam := range presence.Families() {
							box := regexp.MustCompile(`<input[^>]*name="on_enter\.0\.families" value="` + string(fam) + `"[^>]*>`).FindString(row)
							want := fam == presence.FamilyDesk || fam == presence.FamilyMobile
							if box == "" || strings.Contains(box, "checked") != want {
								t.Errorf("family %s: %q, want checked %v", fam, box, want)
							}
						}
					case "order", "type":
						v := actionValues[field].form[0]
						sel := between(row, `name="on_enter.0.`+field+`"`, "</select>")
						if !strings.Contains(sel, `<option value="`+v+`" selected>`) {
							t.Errorf("%s: %s does not select %s", field, sel, v)
						}
					default:
						if v := strings.Join(actionValues[field].form, ", "); !strings.Contains(html.UnescapeString(el), `value="`+v+`"`) {
							t.Errorf("%s: %q, want value %q", field, el, v)
						}
					}
				}
				if kind == presence.ActionCallerID && !strings.Contains(row, "Calls from these phones") {
					t.Errorf("caller ID's families are not the phones the calls come from: %s", row)
				}
			})
		}
	}
}

// TestEditorMoveDownAndRowErrors: "down" on a row in range swaps it with the next, values
// kept, the Up of the first row and the Down of the last disabled; a problem with one action
// is shown on its row, not on the others.
func TestEditorMoveDownAndRowErrors(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, _, tok := c.get("/profiles/new")
	form := func(op string, second url.Values) url.Values {
		f := url.Values{"csrf": {tok}, "op": {op}, "id": {"focus"}, "name": {"Focus"}, "visibility": {"public"},
			"on_enter.n":         {"3"},
			"on_enter.0.action":  {"queue_pause"},
			"on_enter.0.enabled": {"on"},
			"on_enter.0.queues":  {"all"},
			"on_enter.0.reason":  {"Focus"},
			"on_enter.2.action":  {"dnd"},
			"on_enter.2.enabled": {"on"},
			"on_enter.2.on":      {"on"},
			"on_exit.n":          {"0"}}
		for k, v := range second {
			f["on_enter.1."+k] = v
		}
		return f
	}
	presenceRow := url.Values{"action": {"presence"}, "enabled": {"on"}, "state": {"away"}, "message": {"out"}}
	code, body, _ := c.post("/profiles/new", form("down on_enter 0", presenceRow))
	if code != http.StatusOK {
		t.Fatalf("down: %d", code)
	}
	var order []string
	for _, m := range regexp.MustCompile(`name="on_enter\.(\d)\.action" value="([a-z_]+)"`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1]+":"+m[2])
	}
	if strings.Join(order, " ") != "0:presence 1:queue_pause 2:dnd" {
		t.Errorf("after down on row 0: %v", order)
	}
	if !strings.Contains(body, `name="on_enter.1.reason" value="Focus"`) || !strings.Contains(body, `name="on_enter.0.message" value="out"`) {
		t.Errorf("values not kept with their rows")
	}
	if !strings.Contains(body, `value="up on_enter 0" disabled`) || !strings.Contains(body, `value="down on_enter 2" disabled`) ||
		strings.Contains(body, `value="down on_enter 0" disabled`) || strings.Contains(body, `value="up on_enter 2" disabled`) {
		t.Errorf("the ends' buttons: %s", body)
	}

	// What is not a form of the editor (a ring time that is no number) is a bad request; a
	// forward of an unknown type is refused at its row.
	code, _, _ = c.post("/profiles/new", form("save", url.Values{"action": {"followme"}, "enabled": {"on"}, "order": {"sequential"}, "ring_times": {"x"}}))
	if code != http.StatusBadRequest {
		t.Errorf("a ring time that is no number: %d", code)
	}
	code, body, _ = c.post("/profiles/new", form("save", url.Values{"action": {"forward"}, "enabled": {"on"}, "type": {"sideways"}, "on": {"on"}}))
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("save with a bad forward: %d %s", code, body)
	}
	rows := map[int]string{}
	for i := range 3 {
		rows[i] = regexp.MustCompile(`<li class="arow[^"]*" id="on_enter-`+string(rune('0'+i))+`-row">`).FindString(body) +
			between(body, `id="on_enter-`+string(rune('0'+i))+`-row"`, `<div class="abuttons">`)
	}
	if !strings.Contains(rows[1], `class="arow bad"`) || !strings.Contains(rows[1], `<ul class="ferr"><li>`) {
		t.Errorf("the forward row does not show its problem: %s", rows[1])
	}
	for _, i := range []int{0, 2} {
		if strings.Contains(rows[i], "bad") || strings.Contains(rows[i], `class="ferr"`) {
			t.Errorf("row %d shows a problem: %s", i, rows[i])
		}
	}
	if !strings.Contains(body, `id="problems"`) {
		t.Errorf("no summary of the problems")
	}
	if code, _, _ := c.get("/profiles/focus"); code != http.StatusNotFound {
		t.Errorf("the refused profile was saved: %d", code)
	}
}
