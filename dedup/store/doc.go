// Package store defines the shard store: the smallest storage contract cairn
// needs from a backend, and its implementations.
//
// Glossary:
//
//   - Shard store: one Store. A repository with k data and m parity shards
//     uses k+m shard stores, one per shard index, ideally on independent
//     failure domains (disks, hosts, RADOS pools).
//   - Object: an immutable-by-convention byte string. Objects are written
//     whole by Put and never appended to or patched in place.
//   - Name: the slash-separated key of an object, e.g. "packs/ab/abcdef…".
//     Names are portable between backends; CheckName defines the rules.
//
// Everything durable in a repository lives in shard stores; the badger index
// is a rebuildable cache.
//
// The contract is deliberately small (whole-object atomic Put, ranged reads,
// prefix listing, idempotent delete) so that it maps directly onto a local
// directory, a RADOS pool or an S3-like bucket without emulation layers, and
// so that every guarantee the rest of cairn relies on can be checked by one
// conformance suite, storetest.Run. Anything richer (packing, deduplication,
// erasure coding, caching) is built above it, once, instead of per backend.
//
// Implementations here:
//
//   - Local: a directory tree on a local filesystem.
//   - Mem: an in-memory store for unit tests of other components.
//   - Faulty: a wrapper injecting errors (full disk, unreachable backend).
package store
