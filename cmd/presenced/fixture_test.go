package main

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"text/template"
)

// The tests' configurations are files under testdata: whole configurations in
// testdata/config, the profiles and users that several of them share in testdata/profiles and
// testdata/users. Each file is a text/template named by its path under testdata
// ("config/end-to-end.yaml"), which may include the others ({{template "profiles/lunch.yaml"}})
// and use its data (what each takes is said in its first lines, YAML comments) and two
// functions:
//
//   - token NAME, the test API token of NAME (testToken);
//   - keys LINE..., its arguments as a list: more keys of a user, as userKeys holds them.
//
// A right trim marker (-}}) is followed only by a line at column 0 or the end of the file: it
// would eat the next line's indentation too.
//
// A test that needs a variation passes data (e.g. userKeys) or edits what fixture returns; an
// edit that is itself the test case (a table of broken configurations) stays in the test.

// userKeys are more keys of some users of a fixture, by user ID: lines of YAML that the
// fixture puts under the user's entry, after the token (a nested line keeps its own further
// indentation), e.g. userKeys{"carol": {`pin: "4321"`}}.
type userKeys map[string][]string

// fixture returns the configuration fixture testdata/<name> executed with data.
func fixture(t testing.TB, name string, data any) string {
	t.Helper()
	tmpl := template.New("").Funcs(template.FuncMap{
		"token": testToken,
		"keys":  func(lines ...string) []string { return lines },
	})
	root := os.DirFS("testdata")
	for _, dir := range []string{"config", "profiles", "users"} {
		paths, err := fs.Glob(root, dir+"/*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			b, err := fs.ReadFile(root, p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tmpl.New(p).Parse(string(b)); err != nil {
				t.Fatalf("fixture %s: %v", p, err)
			}
		}
	}
	var b strings.Builder
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b.String()
}
