// Package secret checks the secrets users authenticate with: how guessable a token is
// (CheckToken), and hashes of tokens and PINs (argon2id or bcrypt) that the configuration may
// hold instead of the secrets themselves (ParseHash, NewHash).
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// The argon2id parameters NewHash uses: OWASP's password storage recommendation (19 MiB,
// 2 passes, 1 lane), about 30 ms per verification on one core.
const (
	DefaultMemoryKiB = 19 * 1024
	DefaultTime      = 2
	DefaultThreads   = 1
	saltBytes        = 16
	keyBytes         = 32
)

// Bounds on the cost of a hash ParseHash accepts: a verification allocates the argon2 memory
// parameter, so a hash asking for gigabytes would let a few wrong guesses exhaust the host.
const (
	MaxMemoryKiB  = 64 * 1024 // RFC 9106's second recommendation
	MaxTime       = 10
	MaxThreads    = 16
	MaxBcryptCost = 14 // about 1 s per verification
)

// errNotAHash is what ParseHash says of a string that is no hash it knows. It never quotes
// the string: an admin may have pasted the secret itself.
var errNotAHash = errors.New(`not an argon2id hash ("$argon2id$v=19$m=…,t=…,p=…$salt$hash") nor a bcrypt hash ("$2a$", "$2b$" or "$2y$")`)

// Hash is a parsed hash of a secret.
type Hash struct {
	bcrypt []byte // the whole bcrypt hash; nil for argon2id

	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// ParseHash reads an argon2id hash in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, salt and hash in base64 without padding) or
// a bcrypt hash ($2a$, $2b$ or $2y$, cost 4-14). The error says what is wrong without
// quoting s.
func ParseHash(s string) (*Hash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("an argon2i or argon2d hash: use argon2id (presenced -hash-secret makes one)")
	}
	return nil, errNotAHash
}

func parseArgon2id(s string) (*Hash, error) {
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New(`argon2id hash: want "$argon2id$v=19$m=…,t=…,p=…$salt$hash"`)
	}
	if parts[2] != "v=19" {
		return nil, errors.New("argon2id hash: version must be v=19 (argon2 1.3)")
	}
	h := &Hash{}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || seen[k] {
			return nil, errors.New("argon2id hash: parameters must be m=<KiB>,t=<passes>,p=<lanes>")
		}
		seen[k] = true
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id hash: p=%d lanes is more than %d", n, MaxThreads)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id hash: unknown parameter %q", k)
		}
	}
	switch {
	case !seen["m"] || !seen["t"] || !seen["p"]:
		return nil, errors.New("argon2id hash: parameters must be m=<KiB>,t=<passes>,p=<lanes>")
	case h.threads < 1 || h.threads > MaxThreads:
		return nil, fmt.Errorf("argon2id hash: p=%d must be 1-%d", h.threads, MaxThreads)
	case h.memory < 8*uint32(h.threads) || h.memory > MaxMemoryKiB:
		return nil, fmt.Errorf("argon2id hash: m=%d KiB must be between 8×p and %d (64 MiB): each verification allocates it", h.memory, MaxMemoryKiB)
	case h.time < 1 || h.time > MaxTime:
		return nil, fmt.Errorf("argon2id hash: t=%d must be 1-%d", h.time, MaxTime)
	}
	var err error
	if h.salt, err = decodeB64(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, errors.New("argon2id hash: the salt must be at least 8 bytes in base64")
	}
	if h.key, err = decodeB64(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, errors.New("argon2id hash: the hash must be 16-64 bytes in base64")
	}
	return h, nil
}

// decodeB64 reads base64 as PHC strings have it (no padding), and padded as some tools write it.
func decodeB64(s string) ([]byte, error) {
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// bcryptAlphabet is the base64 alphabet of bcrypt's salt and hash.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (*Hash, error) {
	// $2b$10$ + 22 characters of salt + 31 of hash
	if len(s) != 60 || s[6] != '$' || strings.Trim(s[7:], bcryptAlphabet) != "" {
		return nil, errors.New(`bcrypt hash: want 60 characters, "$2b$<cost>$" and 53 of salt and hash`)
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("bcrypt hash: %v", err)
	}
	if cost > MaxBcryptCost {
		return nil, fmt.Errorf("bcrypt hash: cost %d is more than %d (each verification would take seconds)", cost, MaxBcryptCost)
	}
	return &Hash{bcrypt: []byte(s)}, nil
}

// IsHash reports whether s is a hash ParseHash accepts: a token that is one was meant as a
// token_hash.
func IsHash(s string) bool {
	_, err := ParseHash(s)
	return err == nil
}

// Verify reports whether secret is the secret h was made from. It takes as long as the hash's
// parameters say (tens of milliseconds by default): callers bound how many run at once.
func (h *Hash) Verify(secret string) bool {
	if h.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(h.bcrypt, []byte(secret)) == nil
	}
	got := argon2.IDKey([]byte(secret), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// Kind is "argon2id" or "bcrypt".
func (h *Hash) Kind() string {
	if h.bcrypt != nil {
		return "bcrypt"
	}
	return "argon2id"
}

// NewHash returns an argon2id hash of secret with a random salt and the default parameters,
// in the PHC string format ParseHash reads.
func NewHash(secret string) (string, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, DefaultTime, DefaultMemoryKiB, DefaultThreads, keyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, DefaultMemoryKiB, DefaultTime, DefaultThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}
