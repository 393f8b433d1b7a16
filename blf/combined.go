package blf

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/presenced/presenced/presence"
)

// Reading several lamps or presence states with one action
//
// An observation that reads lamps and providers one by one (a few users beside the PBX's whole
// list) reads them several at a time: one Getvar of EVAL(${DEVICE_STATE(a)}&${DEVICE_STATE(b)}
// …&!), which Asterisk answers with the values joined the same way (docs/asterisk.md §4). Under
// load every action waits its turn for Asterisk's attention, so a batch of 8 users reads 2
// actions instead of 32 (lamps) and 1 instead of 8 (presence states, PRESENCE_STATE(p,value)
// and PRESENCE_STATE(p,message,e), the message base64-encoded so that no text of it can be
// taken for a separator).
//
// A combined read is trusted only when its answer has exactly the shape asked for, closed by
// the "!" no value can contain. Any other answer (EVAL missing from the PBX, which answers
// empty; an answer Asterisk cut at its buffer, as long messages can be) is read again one by
// one; an empty answer also stops combining for the concern's life.

// maxCombinedExpr bounds the EVAL(...) of one combined read: AMI reads an action's lines into
// 1,024 bytes (main/manager.c), "Variable: " and the line end included, and refuses longer ones
// ("line too long").
const maxCombinedExpr = 960

// combinedEnd closes every combined read's expression and answer.
const combinedEnd = "!"

// maxCombinedName is the longest name read combined: two presence terms of it fit an
// expression alone.
const maxCombinedName = 400

// combinable reports whether name (a Custom: device or a CustomPresence: provider, already
// checked by checkName) can go into an EVAL expression as it is: nothing in it that variable
// substitution would act on.
func combinable(name string) bool {
	if len(name) > maxCombinedName {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(":._-+@/#*", r):
		default:
			return false
		}
	}
	return true
}

// combinedGroups splits items, each needing the given terms, into groups whose expression
// (terms joined by "&", the end marker, EVAL(...)) fits maxCombinedExpr.
func combinedGroups(items []string, terms func(string) []string) [][]string {
	var (
		groups [][]string
		cur    []string
		size   = len("EVAL(" + combinedEnd + ")")
	)
	for _, it := range items {
		n := 0
		for _, t := range terms(it) {
			n += len(t) + 1
		}
		if len(cur) > 0 && size+n > maxCombinedExpr {
			groups = append(groups, cur)
			cur, size = nil, len("EVAL("+combinedEnd+")")
		}
		cur = append(cur, it)
		size += n
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

func deviceTerms(name string) []string { return []string{"${DEVICE_STATE(" + name + ")}"} }

func presenceTerms(provider string) []string {
	return []string{"${PRESENCE_STATE(" + provider + ",value)}", "${PRESENCE_STATE(" + provider + ",message,e)}"}
}

// readCombined reads group's terms with one Getvar and returns their values, per item; ok is
// false when the answer is not of the shape asked for (then nothing of it is used).
func (c *Concern) readCombined(ctx context.Context, group []string, terms func(string) []string) (values [][]string, ok bool, err error) {
	var all []string
	per := 0
	for _, it := range group {
		ts := terms(it)
		per = len(ts)
		all = append(all, ts...)
	}
	if err := c.base.Acquire(ctx); err != nil {
		return nil, false, err
	}
	v, err := c.base.Reader.Getvar(ctx, "", "EVAL("+strings.Join(all, "&")+"&"+combinedEnd+")")
	c.base.Release()
	if err != nil {
		return nil, false, err
	}
	parts := strings.Split(v, "&")
	if len(parts) != len(all)+1 || parts[len(all)] != combinedEnd {
		if v == "" && c.combine.CompareAndSwap(true, false) {
			c.base.Log.Warn("Asterisk answered a combined read (EVAL) with nothing: lamps and presence states are read one by one from now on; is func_strings.so loaded?")
		}
		return nil, false, nil
	}
	for i := range group {
		values = append(values, parts[i*per:(i+1)*per])
	}
	return values, true, nil
}

// readDevices reads the given lamps, as many per action as fit (or one by one), concurrently.
// A lamp never set reads UNKNOWN, as it is absent from DeviceStateList.
func (c *Concern) readDevices(ctx context.Context, names map[string]bool) (map[string]string, error) {
	return readEach(ctx, c, names, reading[string]{
		what:  "lamp",
		terms: deviceTerms,
		decode: func(values []string) (string, bool) {
			return strings.ToUpper(values[0]), true
		},
		single: func(ctx context.Context, d string) (string, error) {
			v, err := c.base.Reader.Getvar(ctx, "", "DEVICE_STATE("+d+")")
			return strings.ToUpper(v), err
		},
		present: func(s string) bool { return s != UnknownState },
	})
}

// readPresence reads the given providers, as many per action as fit (or one by one with
// PresenceState), concurrently. A provider never set (not_set) counts as absent, as it is
// absent from PresenceStateList.
func (c *Concern) readPresence(ctx context.Context, providers map[string]bool) (map[string]presence.PresenceValue, error) {
	return readEach(ctx, c, providers, reading[presence.PresenceValue]{
		what:  "presence",
		terms: presenceTerms,
		decode: func(values []string) (presence.PresenceValue, bool) {
			msg, err := base64.StdEncoding.DecodeString(values[1])
			return presence.PresenceValue{State: strings.ToLower(values[0]), Message: string(msg)}, err == nil
		},
		single: func(ctx context.Context, p string) (presence.PresenceValue, error) {
			st, err := c.base.Reader.PresenceState(ctx, p)
			return presence.PresenceValue{State: strings.ToLower(st.State), Message: st.Message}, err
		},
		present: func(v presence.PresenceValue) bool { return v.State != "not_set" },
	})
}

// reading is what readEach needs to read one kind of thing: its name in errors, the EVAL
// terms of one, what one's combined values mean (false: read it again alone), how to read
// one alone, and whether a value read counts as present.
type reading[V any] struct {
	what    string
	terms   func(name string) []string
	decode  func(values []string) (V, bool)
	single  func(ctx context.Context, name string) (V, error)
	present func(V) bool
}

// readEach reads names concurrently: those that can be combined as many per Getvar as fit,
// the others, and those whose combined answer is not of the shape asked for, one by one.
func readEach[V any](ctx context.Context, c *Concern, names map[string]bool, r reading[V]) (map[string]V, error) {
	var (
		mu   sync.Mutex
		out  = make(map[string]V, len(names))
		errs []error
		wg   sync.WaitGroup
	)
	record := func(n string, v V, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("blf: observe %s %s: %w", r.what, n, err))
			return
		}
		if r.present(v) {
			out[n] = v
		}
	}
	one := func(n string) {
		var v V
		err := c.base.Acquire(ctx)
		if err == nil {
			v, err = r.single(ctx, n)
			c.base.Release()
		}
		record(n, v, err)
	}
	combined, single := c.split(names)
	for _, n := range single {
		wg.Go(func() { one(n) })
	}
	for _, g := range combinedGroups(combined, r.terms) {
		wg.Go(func() {
			values, ok, err := c.readCombined(ctx, g, r.terms)
			for i, n := range g {
				if err != nil {
					var zero V
					record(n, zero, err)
					continue
				}
				if ok {
					if v, good := r.decode(values[i]); good {
						record(n, v, nil)
						continue
					}
				}
				one(n)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// split sorts names into those read combined and those read one by one.
func (c *Concern) split(names map[string]bool) (combined, single []string) {
	for n := range names {
		if c.combine.Load() && combinable(n) {
			combined = append(combined, n)
		} else {
			single = append(single, n)
		}
	}
	slices.Sort(combined)
	return combined, single
}
