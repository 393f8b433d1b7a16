package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/ami"
)

// tricky survives the round trip through AMI and astdb unchanged.
const tricky = `50%done: a,b,c %s %d "q" (p) [b] \ é`

func TestDB(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	fam := uniq("pdt")
	t.Cleanup(func() { _ = c.DBDelTree(context.Background(), fam, "") })

	if err := c.DBPut(ctx, fam, "1001/active", tricky); err != nil {
		t.Fatal(err)
	}
	if err := c.DBPut(ctx, fam, "1001/dialstring", "PJSIP/1001&PJSIP/1001-mobile"); err != nil {
		t.Fatal(err)
	}
	if err := c.DBPut(ctx, fam, "1002", ""); err != nil {
		t.Fatal(err)
	}
	if v, err := c.DBGet(ctx, fam, "1001/active"); err != nil || v != tricky {
		t.Fatalf("DBGet = %q, %v; want %q", v, err, tricky)
	}
	if v, err := c.DBGet(ctx, fam, "1002"); err != nil || v != "" {
		t.Errorf("DBGet of empty value = %q, %v", v, err)
	}
	_, err := c.DBGet(ctx, fam, "missing")
	wantResponseError(t, "DBGet of missing key", err, "Database entry not found")

	entries, err := c.DBGetTree(ctx, fam, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ami.DBEntry{}
	for _, e := range entries {
		got[e.Key] = e
	}
	want := map[string]ami.DBEntry{
		"/" + fam + "/1001/active":     {Key: "/" + fam + "/1001/active", Family: fam, Name: "1001/active", Value: tricky},
		"/" + fam + "/1001/dialstring": {Key: "/" + fam + "/1001/dialstring", Family: fam, Name: "1001/dialstring", Value: "PJSIP/1001&PJSIP/1001-mobile"},
		"/" + fam + "/1002":            {Key: "/" + fam + "/1002", Family: fam, Name: "1002", Value: ""},
	}
	if len(got) != len(want) {
		t.Fatalf("DBGetTree = %+v", entries)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("entry %s = %+v, want %+v", k, got[k], w)
		}
	}
	sub, err := c.DBGetTree(ctx, fam, "1001")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range sub {
		names = append(names, e.Name)
		// Family/Name are what DBGet takes.
		if v, err := c.DBGet(ctx, e.Family, e.Name); err != nil || v != e.Value {
			t.Errorf("DBGet(%s, %s) = %q, %v", e.Family, e.Name, v, err)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"1001/active", "1001/dialstring"}) {
		t.Errorf("DBGetTree(%s, 1001) names %q", fam, names)
	}
	// Tree matching is by path element: fam does not match famX.
	if err := c.DBPut(ctx, fam+"x", "k", "v"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DBDelTree(context.Background(), fam+"x", "") })
	if again, err := c.DBGetTree(ctx, fam, ""); err != nil || len(again) != 3 {
		t.Errorf("DBGetTree(%s) after putting %sx: %d entries, %v", fam, fam, len(again), err)
	}
	if empty, err := c.DBGetTree(ctx, uniq("pdtempty"), ""); err != nil || len(empty) != 0 {
		t.Errorf("DBGetTree of empty family = %+v, %v", empty, err)
	}

	if err := c.DBDel(ctx, fam, "1002"); err != nil {
		t.Fatal(err)
	}
	err = c.DBDel(ctx, fam, "1002")
	wantResponseError(t, "DBDel of missing key", err, "Database entry could not be deleted")
	if err := c.DBDelTree(ctx, fam, "1001"); err != nil {
		t.Fatal(err)
	}
	if rest, err := c.DBGetTree(ctx, fam, ""); err != nil || len(rest) != 0 {
		t.Errorf("after DBDelTree(%s, 1001): %+v, %v", fam, rest, err)
	}
	err = c.DBDelTree(ctx, fam, "")
	wantResponseError(t, "DBDelTree of empty family", err, "Database entry not found")
	if err := c.DBDelTree(ctx, fam+"x", ""); err != nil {
		t.Errorf("DBDelTree whole family: %v", err)
	}
}

func TestDBLongestValue(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	fam := uniq("pdt")
	t.Cleanup(func() { _ = c.DBDelTree(context.Background(), fam, "") })
	// "Val: " + value is the longest line Asterisk 22 accepts.
	long := strings.Repeat("v", ami.MaxActionLineLength-len("Val: "))
	if err := c.DBPut(ctx, fam, "long", long); err != nil {
		t.Fatalf("DBPut of a %d-byte line: %v", ami.MaxActionLineLength, err)
	}
	if v, err := c.DBGet(ctx, fam, "long"); err != nil || v != long {
		t.Fatalf("DBGet long: %d bytes, %v", len(v), err)
	}
	// One more byte would make Asterisk answer "Failed to parse message:
	// line too long"; the client refuses it before sending.
	if err := c.DBPut(ctx, fam, "long", long+"v"); !strings.Contains(err.Error(), "Asterisk accepts at most") {
		t.Fatalf("over-long DBPut: %v", err)
	}
}
