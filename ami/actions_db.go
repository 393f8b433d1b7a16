package ami

import (
	"context"
	"fmt"
	"strings"
)

// astdb actions (main/db.c). DBPut, DBDel and DBDelTree need write class
// system; DBGet and DBGetTree system or reporting. There are no events
// for astdb changes: poll DBGetTree to find drift.
//
// In family and key names avoid '_' and '%': DBGetTree and DBDelTree match
// with SQL LIKE, where they are wildcards (and LIKE ignores ASCII case).

// DBPut is the DBPut action; encoded here, as goami would (TestEncodersMatchGoami).
type DBPut struct {
	Family, Key, Value string
}

// ActionName implements [Action].
func (DBPut) ActionName() string { return "DBPut" }

// ActionHeaders implements [Action].
func (a DBPut) ActionHeaders() ([]Header, error) {
	if err := require("DBPut", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	if err := checkValues("DBPut", "Family", a.Family, "Key", a.Key, "Value", a.Value); err != nil {
		return nil, err
	}
	// An empty Val is left out, as goami does; Asterisk stores a missing Val as "".
	return headers("Family", a.Family, "Key", a.Key, "?Val", a.Value), nil
}

// DBPut stores value under family/key.
func (c *Client) DBPut(ctx context.Context, family, key, value string) error {
	if _, err := c.Do(ctx, DBPut{Family: family, Key: key, Value: value}); err != nil {
		return fmt.Errorf("ami: db put %s/%s: %w", family, key, err)
	}
	return nil
}

// DBGet is the DBGet list action; encoded here, as goami would (TestEncodersMatchGoami).
type DBGet struct {
	Family, Key string
}

// ActionName implements [Action].
func (DBGet) ActionName() string { return "DBGet" }

// ActionHeaders implements [Action].
func (a DBGet) ActionHeaders() ([]Header, error) {
	if err := require("DBGet", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	if err := checkValues("DBGet", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	return headers("Family", a.Family, "Key", a.Key), nil
}

// DBGet returns the value stored under family/key. A missing entry gives a
// *ResponseError whose Message is Asterisk's "Database entry not found".
func (c *Client) DBGet(ctx context.Context, family, key string) (string, error) {
	l, err := c.List(ctx, DBGet{Family: family, Key: key})
	if err != nil {
		return "", fmt.Errorf("ami: db get %s/%s: %w", family, key, err)
	}
	for _, m := range l.Items {
		if equalFold(m.Event(), "DBGetResponse") {
			return m.Get("Val"), nil
		}
	}
	return "", fmt.Errorf("ami: db get %s/%s: reply has no DBGetResponse event", family, key)
}

// DBGetTree is the DBGetTree list action. Both fields are optional:
// Family "" lists the whole database. Encoded here: goami has no DBGetTree.
type DBGetTree struct {
	Family, Key string
}

// ActionName implements [Action].
func (DBGetTree) ActionName() string { return "DBGetTree" }

// ActionHeaders implements [Action].
func (a DBGetTree) ActionHeaders() ([]Header, error) {
	if a.Family == "" && a.Key != "" {
		return nil, fmt.Errorf("%w: DBGetTree: Key %q given without Family", ErrInvalidHeader, a.Key)
	}
	if err := checkValues("DBGetTree", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	return headers("?Family", a.Family, "?Key", a.Key), nil
}

// DBEntry is one astdb entry from DBGetTree.
type DBEntry struct {
	// Key is the full path as Asterisk reports it, e.g.
	// "/PROFILE/1001/active".
	Key string
	// Family and Name split Key so that DBGet(ctx, Family, Name) reads the
	// entry: Family is the family that was asked for (its first path
	// element if the whole database was listed), Name the rest, e.g.
	// "PROFILE" and "1001/active".
	Family, Name string
	Value        string
}

// DBGetTree lists the entries under family (and key, if not ""). An empty
// tree gives no entries and no error.
func (c *Client) DBGetTree(ctx context.Context, family, key string) ([]DBEntry, error) {
	l, err := c.List(ctx, DBGetTree{Family: family, Key: key})
	if err != nil {
		return nil, fmt.Errorf("ami: db get tree %s: %w", joinDBPath(family, key), err)
	}
	var out []DBEntry
	for _, m := range l.Items {
		if !equalFold(m.Event(), "DBGetTreeResponse") {
			continue
		}
		full := m.Get("Key")
		f, n := splitDBKey(full, family)
		out = append(out, DBEntry{Key: full, Family: f, Name: n, Value: m.Get("Val")})
	}
	return out, nil
}

func joinDBPath(family, key string) string {
	if key == "" {
		return family
	}
	return family + "/" + key
}

// splitDBKey splits "/F/a/b" into the family asked for and the rest.
func splitDBKey(full, family string) (string, string) {
	p := strings.TrimPrefix(full, "/")
	if family != "" {
		f := strings.Trim(family, "/")
		if len(p) > len(f) && strings.EqualFold(p[:len(f)], f) && p[len(f)] == '/' {
			return p[:len(f)], p[len(f)+1:]
		}
	}
	f, n, _ := strings.Cut(p, "/")
	return f, n
}

// DBDel is the DBDel action; encoded here, as goami would (TestEncodersMatchGoami).
type DBDel struct {
	Family, Key string
}

// ActionName implements [Action].
func (DBDel) ActionName() string { return "DBDel" }

// ActionHeaders implements [Action].
func (a DBDel) ActionHeaders() ([]Header, error) {
	if err := require("DBDel", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	if err := checkValues("DBDel", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	return headers("Family", a.Family, "Key", a.Key), nil
}

// DBDel deletes family/key. Asterisk answers "Database entry could not be
// deleted" also when the key does not exist.
func (c *Client) DBDel(ctx context.Context, family, key string) error {
	if _, err := c.Do(ctx, DBDel{Family: family, Key: key}); err != nil {
		return fmt.Errorf("ami: db del %s/%s: %w", family, key, err)
	}
	return nil
}

// DBDelTree is the DBDelTree action; encoded here, as goami would (TestEncodersMatchGoami). Key is optional.
type DBDelTree struct {
	Family, Key string
}

// ActionName implements [Action].
func (DBDelTree) ActionName() string { return "DBDelTree" }

// ActionHeaders implements [Action].
func (a DBDelTree) ActionHeaders() ([]Header, error) {
	if err := require("DBDelTree", "Family", a.Family); err != nil {
		return nil, err
	}
	if err := checkValues("DBDelTree", "Family", a.Family, "Key", a.Key); err != nil {
		return nil, err
	}
	// goami always writes "Key:", also empty; it is left out here so that the intent (the
	// whole family) is explicit on the wire.
	return headers("Family", a.Family, "?Key", a.Key), nil
}

// DBDelTree deletes everything under family (and key, if not ""). Nothing
// to delete gives "Database entry not found".
func (c *Client) DBDelTree(ctx context.Context, family, key string) error {
	if _, err := c.Do(ctx, DBDelTree{Family: family, Key: key}); err != nil {
		return fmt.Errorf("ami: db del tree %s: %w", joinDBPath(family, key), err)
	}
	return nil
}
