package dedup

import (
	"errors"

	"cairn/dedup/erasure"
	"cairn/dedup/index"
)

// Sentinel errors. Callers branch on them with errors.Is; the wrapped message
// carries the context (which pack, which checkpoint).
var (
	// ErrWrongKey means the passphrase or key file does not open the
	// repository's keys. Nothing was decrypted with the wrong key.
	ErrWrongKey = errors.New("wrong passphrase or key file")
	// ErrNeedKey means the repository is encrypted and no key was given.
	ErrNeedKey = errors.New("repository is encrypted: give --key-file or set CAIRN_PASSWORD")
	// ErrCorrupt means stored bytes failed a checksum or authentication and
	// could not be reconstructed from parity.
	ErrCorrupt = erasure.ErrCorrupt
	// ErrNoRepository means the location holds no cairn repository.
	ErrNoRepository = errors.New("no cairn repository here (run `cairn repo init`)")
	// ErrRepositoryExists means init found an existing repository.
	ErrRepositoryExists = errors.New("a cairn repository already exists here")
	// ErrCheckpointNotFound means no checkpoint has the given ID or prefix.
	ErrCheckpointNotFound = errors.New("checkpoint not found")
	// ErrAmbiguousID means an ID prefix matches several checkpoints.
	ErrAmbiguousID = errors.New("checkpoint ID prefix is ambiguous")
	// ErrChunkNotFound means a chunk a manifest references is in no pack.
	ErrChunkNotFound = errors.New("chunk not found in any pack")
	// ErrIndexLocked means another process holds the badger index.
	ErrIndexLocked = index.ErrLocked
	// ErrNoSpace means the file system of the index is too full to write
	// to it safely (docs/format.md, "The index on a full disk").
	ErrNoSpace = index.ErrNoSpace
	// ErrUnsupported means the stored data was written by a newer format.
	ErrUnsupported = erasure.ErrUnsupported
)
