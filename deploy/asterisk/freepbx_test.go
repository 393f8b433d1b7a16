package asterisk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// freePBX builds, at run time (CLI "dialplan add"), the shape of FreePBX 17's contexts that
// docs/freepbx.md fits presenced into, under names of this test's own:
//
//	from-internal         the phones' context: includes from-internal-custom first, then the
//	                      extensions (ext-local) and the DND hints (ext-dnd-hints)
//	from-internal-custom  the admin's: presenced's feature codes and hints, and the admin's
//	                      range of users sent to presenced-dial
//	ext-local             FreePBX's own routing of an extension (here: a UserEvent)
//	ext-dnd-hints         FreePBX's DND BLF hints, *76<device> => Custom:DEVDND<device>
//	predial-hook          the hook FreePBX's outbound dialplan calls before the trunk
//	outbound              an outbound route calling the hook (AMPUSER: the calling extension)
type freePBX struct {
	fromInternal, custom, extLocal, dndHints, hook, outbound string
}

func newFreePBX(t *testing.T, c *ami.Client) *freePBX {
	t.Helper()
	p := uniq("fpbx")
	f := &freePBX{fromInternal: p + "-from-internal", custom: p + "-from-internal-custom", extLocal: p + "-ext-local",
		dndHints: p + "-ext-dnd-hints", hook: p + "-predial-hook", outbound: p + "-outbound"}
	cli := func(cmd string) {
		t.Helper()
		out, err := c.Command(testCtx(t), cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if s := strings.Join(out, "\n"); !strings.Contains(s, "added") && !strings.Contains(s, "included in") {
			t.Fatalf("%s: %s", cmd, s)
		}
	}
	// extensions_custom.conf, as docs/freepbx.md has it
	cli("dialplan add extension _959[1-4],1,Goto(presenced-dial,${EXTEN},1) into " + f.custom)
	cli("dialplan add include presenced-features into " + f.custom)
	cli("dialplan add include presenced-hints into " + f.custom)
	// FreePBX's own
	for _, ext := range []string{"9591", "9595"} {
		cli(`dialplan add extension "` + ext + `,1,UserEvent(FreePBXExtLocal,Exten: ${EXTEN})" into ` + f.extLocal)
		cli("dialplan add extension " + ext + ",2,Hangup() into " + f.extLocal)
	}
	cli("dialplan add extension *769594,hint,Custom:DEVDND9594 into " + f.dndHints)
	cli("dialplan add extension h,1,NoOp() into " + f.fromInternal)
	for _, inc := range []string{f.custom, f.extLocal, f.dndHints} {
		cli("dialplan add include " + inc + " into " + f.fromInternal)
	}
	cli("dialplan add extension s,1,Gosub(presenced-outbound,s,1(${AMPUSER})) into " + f.hook)
	cli("dialplan add extension s,2,Return() into " + f.hook)
	cli("dialplan add extension _8X.,1,Set(AMPUSER=${CALLERID(num)}) into " + f.outbound)
	cli("dialplan add extension _8X.,2,Gosub(" + f.hook + ",s,1) into " + f.outbound)
	cli("dialplan add extension _8X.,3,Dial(Local/${EXTEN}@lab-sink) into " + f.outbound)
	return f
}

// TestFreePBXStyleContexts: presenced's dialplan in FreePBX's context layout (docs/freepbx.md):
// a user in the admin's range reaches presenced-dial (its ring list), even where FreePBX's
// ext-local has the same extension, because from-internal searches from-internal-custom first;
// a user left out of the range keeps FreePBX's routing; *55<n> reaches presenced-features; the
// predial hook sets the caller ID of presenced's profile; and presenced's *76<ext> pattern hint
// is the one a phone subscribing in from-internal sees, FreePBX's exact DEVDND hint coming after.
func TestFreePBXStyleContexts(t *testing.T) {
	c := amiClient(t)
	r := record(t, c)
	f := newFreePBX(t, c)

	// In the range: presenced-dial rings the ring list, not FreePBX's ext-local.
	profile(t, c, "9591", map[string]string{"dialstring": devs("959101", "959102")})
	call(t, c, f.fromInternal, "9591", caller, nil)
	r.wait(t, "ring of 959101 through presenced-dial", 10*time.Second, rang("959101"))
	r.wait(t, "ring of 959102 through presenced-dial", 10*time.Second, rang("959102"))
	// DND of presenced (FreePBX's key name) makes it busy.
	profile(t, c, "9592", map[string]string{"DND": "YES", "dialstring": devs("959201")})
	call(t, c, f.fromInternal, "9592", caller, nil)
	h := r.wait(t, "Hangup of 9592's call", 10*time.Second, hangupOf("Local/9592@"+f.fromInternal+"-"))
	if got := h.m.Get("Cause"); got != "17" {
		t.Errorf("9592 in DND: Hangup cause %q, want 17 (busy)", got)
	}
	// Out of the range: FreePBX's routing.
	call(t, c, f.fromInternal, "9595", caller, nil)
	r.wait(t, "FreePBX's ext-local for 9595", 10*time.Second, userEvent("FreePBXExtLocal", "Exten", "9595"))
	r.expectNone(t, "FreePBX's ext-local for 9591", userEvent("FreePBXExtLocal", "Exten", "9591"))

	// *55<n> from the phones' context reaches presenced's feature codes.
	out, err := c.Command(testCtx(t), "dialplan show *551@"+f.fromInternal)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(out, "\n"); !strings.Contains(s, "'_*55X' =>") || !strings.Contains(s, "presenced-features") {
		t.Errorf("*551@%s does not reach presenced-features:\n%s", f.fromInternal, s)
	}

	// The predial hook: the outgoing call carries the profile's caller ID.
	profile(t, c, "9593", map[string]string{"callerid": `"Support" <0301112222>`})
	sink(t, c, "8959301", "busy")
	call(t, c, f.outbound, "8959301", `"Dora" <9593>`, nil)
	e := r.wait(t, "ring of 8959301", 10*time.Second, rang("8959301"))
	if e.m.Get("From") != "0301112222" || e.m.Get("FromName") != "Support" {
		t.Errorf("outgoing call through the predial hook: caller ID %q <%s>, want \"Support\" <0301112222>",
			e.m.Get("FromName"), e.m.Get("From"))
	}

	// *76<ext> in from-internal: presenced's pattern hint (included first) answers.
	st, err := c.ExtensionState(testCtx(t), "*769594", f.fromInternal)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hint != "Custom:DND9594" {
		t.Errorf("*769594@%s: hint %q, want presenced's Custom:DND9594 (from-internal-custom comes first)", f.fromInternal, st.Hint)
	}
	if st, err := c.ExtensionState(testCtx(t), "*769594", f.dndHints); err != nil || st.Hint != "Custom:DEVDND9594" {
		t.Errorf("*769594@%s: hint %q, %v; want FreePBX's Custom:DEVDND9594", f.dndHints, st.Hint, err)
	}
}
