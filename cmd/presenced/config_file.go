package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/presenced/presenced/presence"
)

// A configuration file is parsed once. Its lists of users, profiles and schedules (listKeys),
// which are most of a large site's file, are decoded item by item straight into their types,
// and each item's part of the YAML parse tree is let go as soon as it is decoded: the parse
// tree of 10,000 users is about 70 MB, the users themselves a fraction of it, and holding the
// tree, a tree of maps and viper's copies of it at once is what made loading peak near 200 MB
// (docs/BENCHMARKS.md, "Configuration loading"). The other keys go through viper as a tree of
// maps, with the environment and the flags over them.

// fileLists are the lists of a configuration file, decoded.
type fileLists struct {
	users     []presence.User
	profiles  []presence.Profile
	schedules []presence.Schedule
}

// set puts the lists the file had into cfg.
func (l fileLists) set(cfg *Config) {
	cfg.Users, cfg.Profiles, cfg.Schedules = l.users, l.profiles, l.schedules
}

// readConfigFile parses a configuration file: the keys other than the lists as a tree of
// maps (for viper), the lists decoded. unknown lists the keys of list items that are no
// fields; problems the values that do not decode, each naming its key
// (users[3].devices[0].family: ...); err is a YAML syntax error.
//
// A file in the usual block style has its lists' items parsed one at a time (splitFile), so
// that no parse tree of the whole list is ever built; any other file (flow style, several
// documents), or one where that finds a problem (a syntax error, an alias to an anchor of
// another item), is parsed whole, which reports problems with the file's own line numbers.
func readConfigFile(raw []byte) (tree map[string]any, lists fileLists, unknown, problems []string, err error) {
	if rest, items, ok := splitFile(raw); ok {
		tree, lists, unknown, problems, err = readNodes(rest)
		if err == nil {
			for _, key := range []string{"users", "profiles", "schedules"} {
				if its, ok := items[key]; ok {
					var un, pr []string
					if lists, un, pr, ok = readItems(key, its, lists); !ok {
						return readNodes(raw) // a problem: reported with the file's line numbers
					}
					unknown, problems = append(unknown, un...), append(problems, pr...)
				}
			}
			return tree, lists, unknown, problems, nil
		}
	}
	return readNodes(raw)
}

// readItems decodes the items of list key, each from its own text, appended to lists. ok is
// false when an item is not a one-item YAML list as splitFile cut it.
func readItems(key string, items [][]byte, lists fileLists) (_ fileLists, unknown, problems []string, ok bool) {
	typ := listKeys()[key]
	for j, text := range items {
		var doc yaml.Node
		if err := yaml.Unmarshal(text, &doc); err != nil || len(doc.Content) != 1 ||
			doc.Content[0].Kind != yaml.SequenceNode || len(doc.Content[0].Content) != 1 {
			return lists, nil, nil, false
		}
		un, pr := decodeListItem(doc.Content[0].Content[0], fmt.Sprintf("%s[%d]", key, j), typ, &lists)
		unknown, problems = append(unknown, un...), append(problems, pr...)
	}
	return lists, unknown, problems, true
}

// splitFile cuts a configuration file in the usual block style into the text of its lists'
// items (users, profiles and schedules at the top level, each item "- ..." at the list's
// indentation) and the rest. ok is false for a file it cannot cut: flow-style lists, several
// documents.
func splitFile(raw []byte) (rest []byte, items map[string][][]byte, ok bool) {
	if blockUnsafe.Match(raw) {
		return nil, nil, false
	}
	lines := strings.SplitAfter(string(raw), "\n")
	items = map[string][][]byte{}
	var out strings.Builder
	for i := 0; i < len(lines); {
		line := lines[i]
		m := topKey.FindStringSubmatch(line)
		if m == nil || listKeys()[m[1]] == nil {
			out.WriteString(line)
			i++
			continue
		}
		if strings.TrimSpace(m[2]) != "" && !strings.HasPrefix(strings.TrimSpace(m[2]), "#") {
			return nil, nil, false // an inline value: a flow list, or not a list at all
		}
		if _, dup := items[m[1]]; dup {
			return nil, nil, false
		}
		i++
		// The list's lines: up to the next line at column 0 that is not a comment or an item.
		var body []string
		for ; i < len(lines); i++ {
			l := lines[i]
			if l != "" && l[0] != ' ' && l[0] != '#' && l[0] != '-' && strings.TrimSpace(l) != "" {
				break
			}
			body = append(body, l)
		}
		its, ok := splitItems(body)
		if !ok {
			return nil, nil, false
		}
		items[m[1]] = its
	}
	return []byte(out.String()), items, true
}

// splitItems cuts a block list's lines into its items, each "- " at the indentation of the
// first.
func splitItems(body []string) ([][]byte, bool) {
	indent := -1
	var items [][]byte
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			items = append(items, []byte(cur.String()))
			cur.Reset()
		}
	}
	for _, l := range body {
		t := strings.TrimLeft(l, " ")
		if t == "" || t == "\n" || strings.HasPrefix(t, "#") {
			if indent >= 0 {
				cur.WriteString(l) // blank lines and comments before the first item are dropped
			}
			continue
		}
		n := len(l) - len(t)
		if indent < 0 {
			if !strings.HasPrefix(t, "- ") && t != "-\n" {
				return nil, false
			}
			indent = n
		}
		if n == indent && (strings.HasPrefix(t, "- ") || t == "-\n") {
			flush()
		} else if n <= indent {
			return nil, false
		}
		cur.WriteString(l)
	}
	flush()
	return items, true
}

var (
	// topKey is a line holding a top-level key: at column 0, a plain key, its value after.
	topKey = regexp.MustCompile(`^([a-z_]+):(?:\s(.*))?\r?\n?$`)
	// blockUnsafe finds what splitFile cannot cut: document markers (several documents). An
	// alias to an anchor in another item or outside the list fails that item's parse, and
	// readConfigFile then parses the file whole.
	blockUnsafe = regexp.MustCompile(`(?m)^(---|\.\.\.)(\s|$)`)
)

// readNodes parses a whole file.
func readNodes(raw []byte) (tree map[string]any, lists fileLists, unknown, problems []string, err error) {
	tree = map[string]any{}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, lists, nil, nil, err
	}
	if len(doc.Content) == 0 {
		return tree, lists, nil, nil, nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, lists, nil, nil, errors.New("the file must be a mapping of keys (key: value), not a list or a value")
	}
	listTypes := listKeys()
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i].Value, root.Content[i+1]
		lk := strings.ToLower(key)
		typ, isList := listTypes[lk]
		if !isList {
			var v any
			if err := val.Decode(&v); err != nil {
				return nil, lists, nil, nil, err
			}
			tree[key] = v
			continue
		}
		switch {
		case val.Kind == yaml.ScalarNode && val.Tag == "!!null":
		case val.Kind != yaml.SequenceNode:
			unknown = append(unknown, lk+" (must be a list)")
		default:
			for j, item := range val.Content {
				un, pr := decodeListItem(item, fmt.Sprintf("%s[%d]", lk, j), typ, &lists)
				unknown, problems = append(unknown, un...), append(problems, pr...)
				val.Content[j] = nil // this item's parse tree is garbage now
			}
		}
		root.Content[i+1] = nil
	}
	return tree, lists, unknown, problems, nil
}

// decodeListItem decodes the list item at path into its type and appends it to lists: the
// keys it has that are no fields, the values that do not decode.
func decodeListItem(item *yaml.Node, path string, typ reflect.Type, lists *fileLists) (unknown, problems []string) {
	var m any
	if err := item.Decode(&m); err != nil {
		return nil, []string{path + ": " + oneLine(err).Error()}
	}
	m = stringKeys(m)
	unknown = unknownInStruct(m, path, typ)
	elem := reflect.New(typ)
	if err := decodeItem(m, elem.Interface()); err != nil {
		for _, p := range decodeProblems(err) {
			problems = append(problems, path+"."+p)
		}
	}
	switch e := elem.Interface().(type) {
	case *presence.User:
		lists.users = append(lists.users, *e)
	case *presence.Profile:
		lists.profiles = append(lists.profiles, *e)
	case *presence.Schedule:
		lists.schedules = append(lists.schedules, *e)
	}
	return unknown, problems
}

// stringKeys turns the maps YAML gives with keys that are not all strings ({0: x}) into maps
// of string keys, as viper does for the rest of the configuration: mapstructure takes only
// those.
func stringKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = stringKeys(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = stringKeys(e)
		}
		return v
	}
	return v
}

// decodeItem decodes one list item as viper's UnmarshalExact decodes the rest of the
// configuration: weakly typed ("queues: all" is a list of one), with the same hooks, every
// key a field.
func decodeItem(in, out any) error {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(durationWithUnit, stringToHolidays),
	})
	if err != nil {
		return err
	}
	return d.Decode(in)
}
