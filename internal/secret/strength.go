package secret

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The least a token must have: MinTokenLength characters and an estimated MinTokenBits bits
// (Bits). Random tokens of 24 characters or more pass: `openssl rand -base64 24` (32
// characters) or `openssl rand -hex 16`.
const (
	MinTokenLength = 16
	MinTokenBits   = 64
)

// CheckToken refuses a token shorter than MinTokenLength characters or estimated at fewer
// than MinTokenBits bits, saying which: "too short: at least 16 characters" or
// "too guessable (about 40 bits; at least 64)". Blanks and control characters are refused
// too: an HTTP client would not send them as they are. The error never quotes the token.
func CheckToken(token string) error {
	if strings.ContainsFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("must not contain blanks or control characters")
	}
	if n := utf8.RuneCountInString(token); n < MinTokenLength {
		return fmt.Errorf("too short: at least %d characters (has %d); make one with `openssl rand -base64 24`", MinTokenLength, n)
	}
	if b := Bits(token); b < MinTokenBits {
		return fmt.Errorf("too guessable (about %.0f bits; at least %d); make one with `openssl rand -base64 24`", math.Floor(b), MinTokenBits)
	}
	return nil
}

// Bits estimates how many bits of guessing a token resists: the Shannon entropy of its
// characters (how evenly it uses how many different ones) times the number of characters,
// not counting those that extend a run ("aaa", "abc", "321": the third character and every
// one after it in the run). So "aaaaaaaaaaaaaaaaaaaa" and "abcdefghijklmnopqrst" are worth a
// few bits, "passwordpassword" about 44 and a random base64 string of 32 characters
// (`openssl rand -base64 24`) 120 or more. Words are not recognised: "correct-horse-battery-staple" scores high; tokens should be
// random.
func Bits(token string) float64 {
	counts := map[rune]int{}
	n, counted := 0, 0
	var prev, step rune
	for i, r := range []rune(token) {
		counts[r]++
		n++
		d := r - prev
		if i < 2 || d != step || d < -1 || d > 1 {
			counted++
		}
		if i > 0 {
			step = d
		}
		prev = r
	}
	if n == 0 {
		return 0
	}
	var perChar float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		perChar -= p * math.Log2(p)
	}
	return perChar * float64(counted)
}
