package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/internal/secret"
)

// TestPasswordEndpoints: the admin sets a password and makes a set-password link; the link sets
// another password once; a user changes their own password only with the current one, and may
// neither make links nor touch another user's password.
func TestPasswordEndpoints(t *testing.T) {
	ctx := context.Background()
	probe := newTestAPI(t) // its Redis and prefix
	acc, err := account.New(account.Options{Redis: probe.rdb, Prefix: probe.prefix, Catalog: probe.h.engine.Catalog()})
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPIWith(t, fixtureUsers(), func(o *Options) { o.Accounts = acc })
	check := func(user, pw string) bool {
		_, err := acc.Authenticate(ctx, user, pw)
		return err == nil
	}

	a.must(t, "PUT", "/api/v1/users/alice/password", adminToken, `{"password":"set-by-the-admin"}`, http.StatusNoContent, nil)
	if !check("alice", "set-by-the-admin") {
		t.Fatal("the admin's password does not sign alice in")
	}
	a.must(t, "PUT", "/api/v1/users/alice/password", adminToken, `{"password":"short"}`, http.StatusUnprocessableEntity, nil)
	a.must(t, "PUT", "/api/v1/users/alice/password", aliceToken, `{"password":"alices-own-password"}`, http.StatusUnprocessableEntity, nil)
	a.must(t, "PUT", "/api/v1/users/alice/password", aliceToken, `{"current":"wrong-password","password":"alices-own-password"}`, http.StatusUnprocessableEntity, nil)
	a.must(t, "PUT", "/api/v1/users/alice/password", aliceToken, `{"current":"set-by-the-admin","password":"alices-own-password"}`, http.StatusNoContent, nil)
	if !check("1001", "alices-own-password") || check("alice", "set-by-the-admin") {
		t.Fatal("alice's change did not take")
	}
	a.must(t, "PUT", "/api/v1/users/bob/password", aliceToken, `{"current":"x","password":"bobs-password-by-alice"}`, http.StatusForbidden, nil)
	a.must(t, "POST", "/api/v1/users/alice/password-link", aliceToken, ``, http.StatusForbidden, nil)

	var link linkView
	a.must(t, "POST", "/api/v1/users/bob/password-link", adminToken, `{"ttl":"2h"}`, http.StatusCreated, &link)
	if link.User != "bob" || link.Token == "" || link.Path != "/set-password?token="+link.Token {
		t.Fatalf("link %+v", link)
	}
	a.must(t, "POST", "/api/v1/users/bob/password-link", adminToken, `{"ttl":"2y"}`, http.StatusUnprocessableEntity, nil)
	body, _ := json.Marshal(useLinkBody{Token: link.Token, Password: "tiny"})
	a.must(t, "POST", "/api/v1/password", "", string(body), http.StatusUnprocessableEntity, nil)
	body, _ = json.Marshal(useLinkBody{Token: link.Token, Password: "bobs-new-password"})
	a.must(t, "POST", "/api/v1/password", "", string(body), http.StatusNoContent, nil)
	a.must(t, "POST", "/api/v1/password", "", string(body), http.StatusNotFound, nil)
	if !check("bob", "bobs-new-password") {
		t.Fatal("the link's password does not sign bob in")
	}
	stored, err := a.rdb.Get(ctx, probe.prefix+"password:bob").Result()
	if err != nil || !secret.IsHash(stored) || strings.Contains(stored, "bobs-new-password") {
		t.Fatalf("stored: %q, %v", stored, err)
	}
}

// TestOverview: GET /users is the admin's, filtered by profile and by what the PBX showed.
func TestOverview(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profile", adminToken, `{"profile":"lunch"}`, http.StatusOK, nil)
	var v overviewView
	a.must(t, "GET", "/api/v1/users", adminToken, "", http.StatusOK, &v)
	if len(v.Users) != len(fixtureUsers()) || v.Users[0].User != "alice" || !v.Users[0].Checked || !v.Users[0].InSync {
		t.Fatalf("overview %+v", v.Users)
	}
	a.must(t, "GET", "/api/v1/users?profile=lunch", adminToken, "", http.StatusOK, &v)
	if len(v.Users) != 1 || v.Users[0].User != "alice" {
		t.Fatalf("profile filter %+v", v.Users)
	}
	a.must(t, "GET", "/api/v1/users?filter=out_of_sync", adminToken, "", http.StatusOK, &v)
	if len(v.Users) != 0 {
		t.Fatalf("out of sync %+v", v.Users)
	}
	a.must(t, "GET", "/api/v1/users?filter=sideways", adminToken, "", http.StatusBadRequest, nil)
	a.must(t, "GET", "/api/v1/users", aliceToken, "", http.StatusForbidden, nil)
}
