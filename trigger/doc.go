// Package trigger switches users automatically (README.md, "Triggers"): schedules (at a time on chosen
// weekdays, or during a range that returns at its end) in each user's time zone, with a
// holiday list; timed profiles (a manual switch "until" a time); and external triggers
// (calendars, meeting tools) that start and end. Connectors (package calendar; docs/TEAMS.md)
// hold users through Hold and Release with activations of their own under the same precedence.
//
// Precedence, in the pure functions Start, End and At: manual (API) and feature-code switches
// always apply and cancel any pending return, which is detected by comparing the user's state
// (Version, Since) with what the triggers recorded when they last switched; a sticky profile is
// never replaced by a schedule or an external trigger; among activations active at once a
// timed (manual) one wins, then the lowest Profile.Priority, then the latest started; when an
// activation ends the user returns to the winner of those still active, else to the profile
// they had before the first one.
//
// Redis keys (Prefix "presenced:"):
//
//	presenced:trigger:due            sorted set: due events (JSON) scored by due time, Unix ms
//	presenced:trigger:fired:<event>  marker of a fired occurrence (72 h): it fires once
//	presenced:trigger:user:<id>      JSON Record: active activations, return profile, state seen
//	presenced:trigger:lock:<id>      short lock serialising one user's triggers across instances
package trigger
