package secret

import (
	"strings"
	"testing"
)

func TestCheckToken(t *testing.T) {
	for _, tc := range []struct {
		token, want string // want: "" accepted, else a substring of the error
	}{
		{"x", "too short: at least 16 characters (has 1)"},
		{"alice-token", "too short: at least 16 characters"},
		{"åäöüßéèêëîïôœùû", "too short"}, // 15 characters, 30 bytes: characters count
		{"aaaaaaaaaaaaaaaaaaaaaaaa", "too guessable (about 0 bits; at least 64)"},
		{"abcdefghijklmnopqrstuvwxyz", "too guessable"},
		{"1234567890123456789012345", "too guessable"},
		{"passwordpassword", "too guessable (about 44 bits"},
		{"8173649250918273", "too guessable"}, // 16 random digits: about 53 bits
		{"alice-secret-token", "too guessable"},
		{"tab\tinside-a-long-token-0123", "blanks or control characters"},
		{"space inside-a-long-token-0123", "blanks or control characters"},
		{"mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5V", ""}, // openssl rand -base64 24
		{"5f0c2a9be17d48c3a6e2b9d07f41c8e2", ""}, // openssl rand -hex 16
		{"2b7e1516-28ae-4d2a-abf7-15882e0b9c4f", ""},
		{"lab-admin-Qx7vR2mK9pT4wZ8n", ""},
	} {
		err := CheckToken(tc.token)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckToken(%q) = %v, want nil (%.1f bits)", tc.token, err, Bits(tc.token))
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckToken(%q) = %v, want %q (%.1f bits)", tc.token, err, tc.want, Bits(tc.token))
		case err != nil && strings.Contains(err.Error(), tc.token):
			t.Errorf("CheckToken(%q) quotes the token: %v", tc.token, err)
		}
	}
}

func TestBitsRanks(t *testing.T) {
	// Random tokens of the lengths the documentation recommends clear the bar by far, and the
	// estimate grows with length and variety.
	if Bits("") != 0 {
		t.Errorf("Bits(\"\") = %v", Bits(""))
	}
	low, mid, high := Bits("aabbaabbaabbaabb"), Bits("q8Zr2LkW"), Bits("q8Zr2LkWm4Tx7Vb1NcP3yH6s")
	if !(low < mid && mid < high && high >= MinTokenBits) {
		t.Errorf("Bits: %v, %v, %v; want increasing and the last at least %d", low, mid, high, MinTokenBits)
	}
}

func TestNewHashVerifies(t *testing.T) {
	s, err := NewHash("mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5V")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("NewHash = %q", s)
	}
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	if !IsHash(s) || IsHash("mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5V") {
		t.Fatal("IsHash")
	}
	if h.Kind() != "argon2id" || !h.Verify("mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5V") || h.Verify("mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5W") || h.Verify("") {
		t.Fatal("the hash verifies the wrong secrets")
	}
	again, _ := NewHash("mlJ8R4xO8bNvY3q1PfZ0wH+6xJ2kcT5V")
	if again == s {
		t.Fatal("two hashes of one secret are equal: no random salt")
	}
}

// Hashes made by other implementations: the argon2 reference implementation's test vector
// ("password", salt "somesalt"), and libxcrypt's crypt(3) for bcrypt
// (python3 -c 'import crypt; print(crypt.crypt(secret, "$2b$10$abcdefghijklmnopqrstuu"))').
const (
	argon2Reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	bcryptSecret    = "correct-token-4f9a2c71b8e3d605"
	bcrypt2b        = "$2b$10$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa"
	bcrypt2y        = "$2y$10$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa"
	bcrypt2a        = "$2a$10$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa"
)

func TestForeignHashesVerify(t *testing.T) {
	for _, tc := range []struct{ hash, right, kind string }{
		{argon2Reference, "password", "argon2id"},
		{strings.Replace(argon2Reference, "$c29tZXNhbHQ$", "$c29tZXNhbHQ=$", 1), "password", "argon2id"}, // padded base64
		{bcrypt2b, bcryptSecret, "bcrypt"},
		{bcrypt2y, bcryptSecret, "bcrypt"},
		{bcrypt2a, bcryptSecret, "bcrypt"},
	} {
		h, err := ParseHash(tc.hash)
		if err != nil {
			t.Errorf("ParseHash(%s): %v", tc.hash, err)
			continue
		}
		if h.Kind() != tc.kind || !h.Verify(tc.right) || h.Verify(tc.right+"x") || h.Verify("") {
			t.Errorf("%s (%s): right secret %v, wrong %v", tc.hash, h.Kind(), h.Verify(tc.right), h.Verify(tc.right+"x"))
		}
	}
}

func TestParseHashRefuses(t *testing.T) {
	for _, tc := range []struct{ hash, want string }{
		{"", "not an argon2id hash"},
		{"correct-token-4f9a2c71b8e3d605", "not an argon2id hash"},
		{"$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "use argon2id"},
		{"$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "want"},
		{"$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "v=19"},
		{"$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "m=4194304 KiB"},
		{"$argon2id$v=19$m=65536,t=0,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "t=0"},
		{"$argon2id$v=19$m=65536,t=2,p=0$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "p=0"},
		{"$argon2id$v=19$m=65536,t=2$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "parameters"},
		{"$argon2id$v=19$m=65536,t=2,p=1,x=3$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", `unknown parameter "x"`},
		{"$argon2id$v=19$m=65536,t=2,p=1$c29t$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "salt"},
		{"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$!!!", "hash must be"},
		{"$2b$10$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQ", "60 characters"},
		{"$2b$10$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzx!a", "60 characters"},
		{"$2b$15$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa", "cost 15"},
		{"$2b$03$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa", "bcrypt hash"},
	} {
		_, err := ParseHash(tc.hash)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHash(%q) = %v, want %q", tc.hash, err, tc.want)
		}
		if err != nil && len(tc.hash) > 8 && strings.Contains(err.Error(), tc.hash) {
			t.Errorf("ParseHash quotes its input: %v", err)
		}
	}
}

// BenchmarkVerify is what one slow-hash verification costs (paid once per presented token per
// instance by the API's cache; on every PIN entry).
func BenchmarkVerify(b *testing.B) {
	own, err := NewHash(bcryptSecret)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, hash, secret string }{
		{"argon2id-default", own, bcryptSecret},
		{"argon2id-64MiB", argon2Reference, "password"},
		{"bcrypt-10", bcrypt2b, bcryptSecret},
	} {
		h, err := ParseHash(bc.hash)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if !h.Verify(bc.secret) {
					b.Fatal("no match")
				}
			}
		})
	}
}
