package presence

import (
	"strings"
	"testing"

	"github.com/presenced/presenced/internal/secret"
)

// TestCatalogChecksSecrets: tokens long and random enough, at most one of token/token_hash
// (the loader reports token_file conflicts), hashes presenced can verify, PINs of digits; the
// key named is token_file or pin_file when the secret came from a file.
func TestCatalogChecksSecrets(t *testing.T) {
	const strong = "q8Zr2LkWm4Tx7Vb1NcP3yH6s"
	hash, err := secret.NewHash(strong)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*User)) []User {
		u := alice()
		edit(&u)
		return []User{u}
	}
	for _, tc := range []struct {
		name  string
		users []User
		want  string // "" accepted
	}{
		{"strong token", with(func(u *User) { u.Token = strong }), ""},
		{"token hash", with(func(u *User) { u.TokenHash = hash }), ""},
		{"pin hash", with(func(u *User) { u.PINHash = hash }), ""},
		{"no token", with(func(u *User) {}), ""},
		{"short token", with(func(u *User) { u.Token = "alice-token" }), "users[0] (alice).token: too short: at least 16 characters"},
		{"guessable token", with(func(u *User) { u.Token = "abcdefghijklmnopqrstuvwxyz" }), "users[0] (alice).token: too guessable (about 9 bits; at least 64)"},
		{"weak token from a file", with(func(u *User) { u.Token, u.TokenFile = "alice-token", "/etc/presenced/alice" }), "users[0] (alice).token_file: too short"},
		{"token and hash", with(func(u *User) { u.Token, u.TokenHash = strong, hash }), "users[0] (alice).token_hash: set only one of token, token_hash and token_file"},
		{"hash as token", with(func(u *User) { u.Token = hash }), "users[0] (alice).token: is a hash: give it as token_hash"},
		{"bad hash", with(func(u *User) { u.TokenHash = "$2b$10$short" }), "users[0] (alice).token_hash: bcrypt hash: want 60 characters"},
		{"pin and hash", with(func(u *User) { u.PIN, u.PINHash = "1234", hash }), "users[0] (alice).pin_hash: set only one of pin, pin_hash and pin_file"},
		{"bad pin", with(func(u *User) { u.PIN = "12a4" }), "users[0] (alice).pin: must be 1-8 digits"},
		{"bad pin from a file", with(func(u *User) { u.PIN, u.PINFile = "12a4", "/etc/presenced/pin" }), "users[0] (alice).pin_file: must be 1-8 digits"},
		{"bad pin hash", with(func(u *User) { u.PINHash = "1234" }), "users[0] (alice).pin_hash: not an argon2id hash"},
		{"duplicate token from a file", append(with(func(u *User) { u.Token = strong }), func() User {
			u := alice()
			u.ID, u.Extension, u.Token, u.TokenFile = "bob", "1002", strong, "/etc/presenced/bob"
			return u
		}()), `users[1] (bob).token_file: is already the token of user "alice"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCatalogFrom(CatalogConfig{Users: tc.users})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), strong):
				t.Fatalf("the error quotes the token: %v", err)
			}
		})
	}
}
