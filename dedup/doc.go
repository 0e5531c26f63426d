// Package dedup is cairn's repository engine: a deduplicated, compressed,
// optionally encrypted chunk store, erasure-coded across k+m shard stores.
// It backs volumes up block by block into checkpoints and reads them back
// with random access. The on-disk format, the commit rule and the threat
// model are in docs/format.md.
//
// # Glossary
//
//   - Repository: one config, the packs and manifests of all checkpoints,
//     spread over k+m shard stores, plus a local index. Opened with Open,
//     created with Init.
//   - Shard store: one store.Store (a directory today). Shard store i holds
//     shard i of every coded object, and a full copy of the config.
//   - Shard: one of the k+m pieces of a coded object as stored: a header
//     with xxh3 checksums of every 64 KiB block, then the shard data.
//   - Coded object: a pack or manifest cut into k data shards (the last one
//     zero-padded) plus m Reed–Solomon parity shards, all under the same
//     name. Any k intact shards give it back; any byte range can be rebuilt
//     from the same range of k shards. Package dedup/erasure.
//   - Pack: a coded object of blobs followed by a header listing them
//     (sealed when encrypted) and a 16-byte trailer. Named by 16 random
//     bytes: packs/xx/<32 hex digits>.
//   - Blob: the stored form of one chunk: zstd when that saves space, then
//     AES-256-GCM with the chunk ID as additional data when encrypted;
//     whole, in independently sealed frames (with page hashes), or as a
//     delta (format.md §9).
//   - Delta: a chunk stored as the pages that changed since the parent
//     checkpoint's version of its block, plus references to chunks that
//     store the other pages themselves: one hop at most (delta.go).
//   - Chunk: the plaintext of one data block; stored once however many
//     blocks and checkpoints share it.
//   - Chunk ID: keyed BLAKE3-256 of a chunk's plaintext, under a secret key
//     from the config, so IDs cannot be computed or collided without it.
//   - Block: a fixed-size, aligned piece of a volume (the checkpoint's block
//     size); only the last block may be short.
//   - Hole: a block that is not stored and reads as zeros: unallocated in
//     the source, or read as all zeros.
//   - Block map: per checkpoint, the hole runs and, for every other block in
//     order, its chunk ID and a hint of the pack holding it (BlockMap).
//   - Manifest: the coded object manifests/<checkpoint ID> holding a
//     checkpoint's metadata and block map, zstd-compressed and sealed.
//   - Checkpoint: one backup of one source. It exists exactly when at least
//     k shards of its manifest exist; the manifest is written only after
//     every pack it references is durable.
//   - Index: a badger database mapping chunk ID → pack location, with pack
//     facts and cached checkpoint metadata. A cache: rebuilt from the shard
//     stores when missing (RebuildIndex) and never needed to read.
//   - Session: one backup in progress, in memory: the chunks it reuses
//     (pins), the chunks it stored and where, and the packs it wrote, so
//     that prune does not delete what an uncommitted checkpoint needs.
package dedup
