// Package nbd exports cairn checkpoints as network block devices over the
// NBD protocol (NetworkBlockDevice/nbd doc/proto.md), so that a hypervisor
// can boot from a checkpoint at once (instant recovery) or a tool such as
// qemu-img or nbdcopy can read it.
//
// The server speaks fixed newstyle negotiation with NBD_OPT_GO/INFO/LIST/
// ABORT/EXPORT_NAME, STARTTLS (crypto/tls), structured replies and the
// base:allocation metadata context, and serves requests concurrently: a
// bounded set of workers per connection, replies written whole under one
// lock. Wire constants and header layouts come from go-nbd's protocol
// package; go-nbd's own server loop is not used.
//
// Glossary:
//
//   - Export: a named Device offered to clients; a Catalog resolves names
//     to exports. CheckpointCatalog exports a repository's checkpoints by
//     ID, unique ID prefix or "<source>/<ID>", optionally only behind a
//     secret ("<secret>/<ID>").
//   - Device: the bytes of an export with their allocation (Extents);
//     VolumeDevice adapts a checkpoint reader (*dedup.Reader), read-only.
//   - Overlay: a copy-on-write layer in a local sparse file that makes an
//     export writable without touching the repository; it owns granules
//     (Granularity bytes) once written, and a bitmap of owned granules is
//     saved on flush so the overlay survives a restart.
//   - Handshake (option haggling): the options before transmission; it
//     must progress every HandshakeTimeout or the connection is dropped.
//   - Transmission: the request/reply phase. Requests are bounded by
//     MaxRequest; an invalid one gets an error reply, a malformed stream
//     (bad magic) closes the connection.
//   - Structured reply: replies in chunks, which let reads skip holes
//     (OFFSET_HOLE) and report errors without data (ERROR_OFFSET).
//   - Drain: Shutdown stops reading new requests, answers those in flight
//     and closes each connection.
package nbd
