// Package ari is presenced's client for the Asterisk REST Interface (ARI),
// built for a daemon that runs for months next to an Asterisk 22 that
// restarts, hangs or disappears.
//
// It speaks the event model of github.com/CyCoreSystems/ari/v6 (Event and
// the typed events such as *StasisStart are that library's types, decoded
// by its DecodeEvent) but owns the connection instead of using the
// library's native client, because that client cannot be made to behave:
// its REST calls use an unexported zero http.Client with no timeout (also
// inside its reconnect loop), its reconnects are invisible (Connected() is
// an unsynchronised bool), events sent before Bus().Subscribe are lost,
// and its bus drops events silently when a subscriber is slow.
//
// What this package guarantees instead:
//
//   - every REST call is bounded by its ctx and Config.RequestTimeout,
//     through the client's own http.Client;
//   - Run never blocks the daemon: it retries with backoff until ctx is
//     done, and Status says whether we are connected and why not;
//   - "connected" means events arrive: on connect and then periodically a
//     user event must come back over the websocket, else the client
//     reconnects (an open websocket can be deaf when Asterisk deactivated
//     or reassigned the application);
//   - on every (re)connect, channels orphaned in the application are hung
//     up, device subscriptions are restored, a *Resync event is queued and
//     Config.OnReconnect runs;
//   - events are read straight off the websocket into the buffered Events
//     channel, from the first one on; if the consumer falls behind, events
//     are dropped but counted, logged and followed by a *Resync;
//   - each daemon instance has its own Stasis application name (AppName),
//     so two instances never steal each other's events.
package ari
