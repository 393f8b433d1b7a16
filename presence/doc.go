// Package presence is the heart of presenced: users, presence profiles, the switching engine and
// the state it keeps in Redis. It depends on no protocol package; the concerns that act on
// Asterisk (queue, astdb, ...) plug into it.
package presence
