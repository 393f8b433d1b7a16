// Package ami is an Asterisk Manager Interface client for a long-running
// daemon.
//
// It has three layers:
//
//   - a codec ([Message], [Reader]): ordered, repeatable headers, no
//     goroutines, fuzzed;
//   - the [Client]: one TCP connection shared by many goroutines, one reader
//     goroutine, replies matched to callers by ActionID (net/rpc style),
//     events fanned out to subscribers with bounded buffers, keepalive Pings,
//     reconnection with backoff and an OnReady hook once Asterisk is fully
//     booted;
//   - typed actions ([QueueAdd], [DBGetTree], [Originate], ...) and typed
//     helpers on *Client; anything else implements [Action].
//
// The action encoders of github.com/heltonmarx/goami are reused where they
// are correct, through goami's own Client interface; see goami.go for which
// ones and why the others are written here.
//
// The package only reports what Asterisk says: a "Response: Error" becomes a
// [*ResponseError] with Asterisk's message, and deciding that, say, "Already
// there" is harmless is left to the caller.
//
// Typical use:
//
//	c, err := ami.New(ami.Config{Addr: "127.0.0.1:5038", Username: u, Secret: s,
//		OnReady: resync, Logger: log, Registerer: reg})
//	...
//	sub := c.Subscribe(256)
//	go c.Run(ctx)
//	err = c.QueuePause(ctx, "PJSIP/1001", "sales", true, "lunch")
package ami
