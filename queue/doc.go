// Package queue is presenced's queue concern: it observes queue membership with one
// QueueStatus per observation and applies queue_add, queue_remove, queue_pause and
// queue_penalty operations over AMI (docs/asterisk.md §2).
//
// The package decides policy, the ami package only reports what Asterisk says: Asterisk's
// idempotent answers become presence.ResultUnchanged here ("Unable to remove interface: Not
// there" always, "Unable to add interface: Already there" once the member read back is as
// wanted; see [Concern.Apply]), everything else Asterisk refuses becomes presence.ResultFailed
// with an error naming the queue and the interface.
//
// Two things keep a mass switch cheap for Asterisk. A member that must join paused joins with
// one QueueAdd carrying Paused and Reason (never add-then-pause). And when one user's
// operations pause (or unpause) the interface alike in every queue it is in, one QueuePause
// without Queue replaces the per-queue actions; see [Concern.Apply] for when that is safe.
package queue
