// Package appliance is the cairn daemon's core: configuration, the state
// store, the protection/restore/verify job runner with crash recovery, the
// operation engine (time triggers, scheduled operations, retention, prune)
// and metrics. The HTTP API (package api) is a thin layer over Service.
//
// # Glossary
//
//   - Project: a tenant; every object belongs to exactly one, and lookups
//     across projects fail with ErrNotFound.
//   - Plan: a named set of resources protected together.
//   - Checkpoint (API): one protection of a plan; it holds one repository
//     checkpoint per resource (linked by the tag cairn.checkpoint).
//   - Job: a protect, restore or verify run by the bounded worker pool; its
//     record survives crashes so a restart can mark it failed and clean up.
//   - Trigger / scheduled operation: Karbor's time trigger (crontab
//     pattern, evaluated by robfig/cron, or calendar RRULE, by rrule-go,
//     between its start_time and end_time) and the protect-with-retention
//     it fires.
//   - Trust: the Keystone trust a Keystone user's scheduled operation is
//     created with, from that user to the cloud user in the operation's
//     project; the operation's runs act through it (Trusts, trusts.go).
//   - State store: the bbolt database DATA_DIR/state.db (stateStore), a
//     bucket per kind of object, one fsynced transaction per change.
package appliance
