package ari

import (
	"context"
	"log/slog"

	xslog "golang.org/x/exp/slog"
)

// LibraryLogger returns a golang.org/x/exp/slog logger, the kind
// github.com/CyCoreSystems/ari/v6 takes (native.Options.Logger,
// ari.Client.SetLogger), that writes to l (a log/slog logger). Use it
// wherever code hands a logger to ari/v6 directly; nil l discards.
func LibraryLogger(l *slog.Logger) *xslog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return xslog.New(bridgeHandler{h: l.Handler()})
}

// bridgeHandler is an x/exp/slog Handler that forwards to a log/slog
// Handler. Levels, attributes and groups map one to one.
type bridgeHandler struct {
	h slog.Handler
}

// Enabled implements xslog.Handler.
func (b bridgeHandler) Enabled(ctx context.Context, l xslog.Level) bool {
	return b.h.Enabled(ctx, slog.Level(l))
}

// Handle implements xslog.Handler.
func (b bridgeHandler) Handle(ctx context.Context, r xslog.Record) error {
	out := slog.NewRecord(r.Time, slog.Level(r.Level), r.Message, r.PC)
	r.Attrs(func(a xslog.Attr) bool {
		out.AddAttrs(bridgeAttr(a))
		return true
	})
	return b.h.Handle(ctx, out)
}

// WithAttrs implements xslog.Handler.
func (b bridgeHandler) WithAttrs(as []xslog.Attr) xslog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = bridgeAttr(a)
	}
	return bridgeHandler{h: b.h.WithAttrs(out)}
}

// WithGroup implements xslog.Handler.
func (b bridgeHandler) WithGroup(name string) xslog.Handler {
	return bridgeHandler{h: b.h.WithGroup(name)}
}

func bridgeAttr(a xslog.Attr) slog.Attr {
	return slog.Attr{Key: a.Key, Value: bridgeValue(a.Value)}
}

func bridgeValue(v xslog.Value) slog.Value {
	v = v.Resolve() // x/exp LogValuers are not log/slog LogValuers
	switch v.Kind() {
	case xslog.KindBool:
		return slog.BoolValue(v.Bool())
	case xslog.KindDuration:
		return slog.DurationValue(v.Duration())
	case xslog.KindFloat64:
		return slog.Float64Value(v.Float64())
	case xslog.KindInt64:
		return slog.Int64Value(v.Int64())
	case xslog.KindString:
		return slog.StringValue(v.String())
	case xslog.KindTime:
		return slog.TimeValue(v.Time())
	case xslog.KindUint64:
		return slog.Uint64Value(v.Uint64())
	case xslog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, a := range g {
			out[i] = bridgeAttr(a)
		}
		return slog.GroupValue(out...)
	default:
		return slog.AnyValue(v.Any())
	}
}
