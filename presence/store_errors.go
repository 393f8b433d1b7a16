package presence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ErrStoreUnavailable is what every error means for which errors.Is(err, ErrStoreUnavailable)
// holds: the state store cannot serve now, and the same request may succeed later. The API
// answers it with 503 and Retry-After.
var ErrStoreUnavailable = errors.New("state store unavailable")

// UnavailableError is a state-store operation that failed because the store cannot serve: it
// is down, unreachable or does not answer in time, every connection is busy, it is still
// loading its data, it is a read-only replica or has lost its master, it refuses presenced's
// credentials, or it holds a schema this presenced does not understand (then Err is a
// *SchemaError). errors.Is(err, ErrStoreUnavailable) holds for it.
type UnavailableError struct {
	// Reason says why in a few words that are safe to show to API clients: no address, no
	// credential ("connection refused", "timed out", Redis's own reply such as "LOADING Redis
	// is loading the dataset in memory").
	Reason string
	// Op is what presenced was doing ("load state of alice"); empty for a schema mismatch.
	Op  string
	Err error
}

func (e *UnavailableError) Error() string {
	if e.Op == "" {
		return e.Message()
	}
	return fmt.Sprintf("%s (%s: %v)", e.Message(), e.Op, e.Err)
}

// Message is the error without the operation and the cause: what the API answers.
func (e *UnavailableError) Message() string { return "state store unavailable: " + e.Reason }

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrStoreUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrStoreUnavailable }

// SchemaError is a store whose schema version key does not say SchemaVersion: another
// presenced's layout, or presenced data without the key. presenced neither reads nor writes
// such a store.
type SchemaError struct {
	Key string
	// Found is the key's value; empty when the key is missing.
	Found string
	// Sample is one of presenced's keys found in a store without the schema key.
	Sample string
}

func (e *SchemaError) Error() string {
	if e.Found == "" {
		return fmt.Sprintf("redis key %s is missing but the store holds presenced data (%s); presenced does not guess "+
			"its layout and neither reads nor writes it: if it is schema %s, set the key (SET %s %s)",
			e.Key, e.Sample, SchemaVersion, e.Key, SchemaVersion)
	}
	return fmt.Sprintf("redis key %s is %q but this presenced uses schema %s; it neither reads nor writes the store "+
		"until the key says %s (another presenced version wrote it?)", e.Key, e.Found, SchemaVersion, SchemaVersion)
}

// StoreError describes err, the failure of a Redis command on key while doing op ("load
// state of alice"): an *UnavailableError when the store cannot serve (see there), a
// *CorruptError naming key when the key holds another type of value than the command works
// on (WRONGTYPE), otherwise err wrapped with op. A nil err stays nil. Packages that keep their
// own keys in the state store (trigger) describe their failures with it too.
func StoreError(err error, op, key string) error {
	var (
		unavailable *UnavailableError
		corrupt     *CorruptError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unavailable), errors.As(err, &corrupt):
		return err // described already (by a check on a new connection)
	}
	if reason, ok := unavailableReason(err); ok {
		return &UnavailableError{Reason: reason, Op: op, Err: err}
	}
	if redis.HasErrorPrefix(err, "WRONGTYPE") {
		return &CorruptError{Key: key, Err: fmt.Errorf("the key holds another type of value than presenced keeps there: %w", err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailableReason says whether err means the store cannot serve, and why in words safe to
// answer. The caller's own cancellation or deadline is not the store's fault and is not one.
func unavailableReason(err error) (string, bool) {
	var op *net.OpError
	dial := errors.As(err, &op) && op.Op == "dial"
	switch {
	case dial && errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case dial:
		return "cannot connect", true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "", false
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return "every connection is busy (pool timeout)", true
	case errors.Is(err, redis.ErrClosed):
		return "connection closed (shutting down)", true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out", true
	}
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return "connection lost", true
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return "", false
	}
	// Replies of a Redis that is up but cannot serve presenced now: loading its data set, a
	// replica (read-only, or its master down), a cluster or replication problem, a script
	// running too long, snapshots failing (MISCONF), out of memory, too many clients, or
	// refusing presenced's credentials or commands.
	if redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsOOMError(err) ||
		redis.IsMaxClientsError(err) || redis.IsNoReplicasError(err) || redis.IsAuthError(err) ||
		redis.IsPermissionError(err) || redis.HasErrorPrefix(err, "BUSY") || redis.HasErrorPrefix(err, "MISCONF") {
		msg, _, _ := strings.Cut(re.Error(), "\n")
		return msg, true
	}
	return "", false
}

// corruptOnly reports whether err is made only of *CorruptErrors (one, or several joined):
// records left out of an answer that is otherwise whole.
func corruptOnly(err error) bool {
	return len(corruptErrors(err)) > 0
}

// corruptErrors returns the *CorruptErrors err is made of, or nil when it holds anything else.
func corruptErrors(err error) []*CorruptError {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok { // errors.Join's shape
		errs = j.Unwrap()
	}
	var out []*CorruptError
	for _, e := range errs {
		var c *CorruptError
		if !errors.As(e, &c) {
			return nil
		}
		out = append(out, c)
	}
	return out
}
