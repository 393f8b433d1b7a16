package featurecode

import (
	"fmt"
	"strings"

	"github.com/presenced/presenced/presence"
)

// FeaturesContext is the context of the shipped dialplan (deploy/asterisk/extensions_presenced.conf)
// that hands the feature codes to the application. It cannot be a trusted context: a call that
// reaches it by Goto() or a Local channel rather than by an include reports it as its context,
// whoever the caller is.
const FeaturesContext = "presenced-features"

// maxContextLen is the longest dialplan context name Asterisk keeps (AST_MAX_CONTEXT is 80
// bytes with the terminating NUL).
const maxContextLen = 79

// Identity is how the caller of a feature-code call was established.
type Identity string

// The identities of a call.
const (
	// IdentityDevice: the channel is one of the user's devices (its name against the users'
	// device dial strings) and the call was not transferred to the feature code.
	IdentityDevice Identity = "device"
	// IdentityHotDesk: the channel is a hot desk the user is bound to by a location action
	// and holds (presence.Engine.BoundTo), and the call was not transferred.
	IdentityHotDesk Identity = "hot_desk"
	// IdentityTrustedContext: the call entered the feature code from one of the trusted
	// contexts (Options.TrustedContexts), is no Local channel, was not transferred, and its
	// caller ID number is the user's extension.
	IdentityTrustedContext Identity = "trusted_context"
	// IdentityNone: the call is not proven to come from any user. It may still name a user
	// (by *55<n>*<ext> or by its caller ID), whom it switches only with that user's PIN.
	IdentityNone Identity = "none"
)

// caller is who a call is proven to come from.
type caller struct {
	user *presence.User // nil unless proven
	how  Identity
	why  string // why the call is not proven (IdentityNone), for the log
}

// identify establishes who a call comes from. Only two things prove it: the channel being one
// of the user's devices, or, where the admin opted in, the caller ID of a call that entered the
// feature code from a trusted context. Caller ID alone proves nothing: a forward or a queue call
// carries the caller ID of whoever called, not of the phone that reached the feature code.
//
// Local channels are never trusted, whatever their context. The shipped dialplan
// (deploy/asterisk/extensions_presenced.conf, presenced-forward) dials every forward as
// Local/<target>@${PRESENCED_FORWARD_CONTEXT}, and its header tells admins to set that to their
// phones' context: the forward's Local channel then dials *55<n> from the very context an admin
// would trust, with the caller ID of whoever called the forwarding user, and would switch that
// caller without a PIN. Queue and follow-me calls are Local channels as well, with someone
// else's caller ID. A call transferred to the feature code (the dialplan passes
// ${BLINDTRANSFER}${ATTENDEDTRANSFER}) is not proven either: its channel, even a user's own
// device, was put there by the one who transferred it.
//
// A hot desk (a phone that is no user's own) is the phone of the user bound to it while they
// hold it: bound, when not nil, names that user from the channel's device.
func identify(cat *presence.Catalog, trusted map[string]bool, channelName, dialplanContext string, req request,
	bound func(device string) (*presence.User, bool)) caller {
	if req.transfer != "" {
		return caller{how: IdentityNone, why: fmt.Sprintf("transferred to the feature code by %s", req.transfer)}
	}
	if u, ok := userOfDevice(cat, channelName); ok {
		return caller{user: u, how: IdentityDevice}
	}
	if isLocal(channelName) {
		return caller{how: IdentityNone, why: "a Local channel (a forward, a queue or follow-me call) carries someone else's caller ID"}
	}
	if i := strings.LastIndexByte(channelName, '-'); i > 0 && bound != nil {
		if u, ok := bound(channelName[:i]); ok {
			return caller{user: u, how: IdentityHotDesk}
		}
	}
	if !trusted[dialplanContext] {
		return caller{how: IdentityNone, why: fmt.Sprintf("not a user's device, and context %q is not trusted", dialplanContext)}
	}
	if req.caller == "" {
		return caller{how: IdentityNone, why: fmt.Sprintf("no caller ID in trusted context %q", dialplanContext)}
	}
	u, ok := cat.UserByExtension(req.caller)
	if !ok {
		return caller{how: IdentityNone, why: fmt.Sprintf("caller ID %q in trusted context %q is no user's extension", req.caller, dialplanContext)}
	}
	return caller{user: u, how: IdentityTrustedContext}
}

// userOfDevice returns the user one of whose devices the channel is, from its name
// ("PJSIP/1001-0000002a" is device PJSIP/1001). A Local channel is nobody's device.
func userOfDevice(cat *presence.Catalog, channelName string) (*presence.User, bool) {
	i := strings.LastIndexByte(channelName, '-')
	if i <= 0 || isLocal(channelName) {
		return nil, false
	}
	dev := channelName[:i]
	for _, u := range cat.Users {
		for _, d := range u.Devices {
			if strings.EqualFold(d.Dial, dev) {
				return u, true
			}
		}
	}
	return nil, false
}

// isLocal reports whether the channel is a Local channel ("Local/<exten>@<context>-<n>;<1|2>"),
// or a name without a technology, which is treated alike: never a device, never trusted.
func isLocal(channelName string) bool {
	tech, _, ok := strings.Cut(channelName, "/")
	return !ok || strings.EqualFold(tech, "Local")
}

// deviceOf is the channel's name without Asterisk's unique suffix ("-0000002a", ";2"), made
// safe for the journal: printable ASCII, at most 64 bytes.
func deviceOf(channelName string) string {
	name := channelName
	if i := strings.LastIndexByte(name, ';'); i > 0 && isLocal(name) {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		name = name[:i]
	}
	var b strings.Builder
	for _, c := range []byte(name) {
		if b.Len() == 64 {
			break
		}
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// CheckContext reports whether name may be a trusted context: a dialplan context name (letters,
// digits, - _ . +, at most 79 bytes) other than FeaturesContext.
func CheckContext(name string) error {
	if name == "" || len(name) > maxContextLen {
		return fmt.Errorf("%q is not a dialplan context name (1-%d characters)", name, maxContextLen)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.+", c)) {
			return fmt.Errorf("%q is not a dialplan context name (letters, digits, - _ . +)", name)
		}
	}
	if strings.EqualFold(name, FeaturesContext) {
		return fmt.Errorf("%q cannot be trusted: calls that reach it by Goto() report it whoever dialled; list the contexts your phones' endpoints use", name)
	}
	return nil
}
