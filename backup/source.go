package backup

import (
	"context"

	"cairn/blockdev"
	"cairn/dedup"
)

// Source is a device that Run backs up: a file read as it is, or an image
// read at snapshots.
type Source interface {
	// Name is the source name of the device's checkpoints
	// (dedup.Checkpoint.Source): every backup of one device forms one
	// chain under it.
	Name() string
	// Snapshots returns what takes the device's snapshots, or nil for a
	// device read as it is (a plain file: no point in time, no diff).
	Snapshots() Snapshotter
	// Open opens the device at snapshot snap, or as it is when snap is ""
	// (only then for a device without a Snapshotter). Run closes the
	// Reader.
	Open(ctx context.Context, snap string) (Reader, error)
}

// Reader is a device opened for one backup. ReadAt must be safe for
// concurrent use: Run reads with several workers.
type Reader interface {
	dedup.Source
	// Allocated returns the extents that hold data, sorted and merged;
	// the rest reads as zeros and is never read.
	Allocated(ctx context.Context) ([]blockdev.Extent, error)
	Close() error
}

// Differ is a Reader that can tell what changed since an older snapshot
// of the same device. Run asks only readers of a Source with a
// Snapshotter, and only when the plan has a base snapshot.
type Differ interface {
	// Changed returns the extents that differ between snapshot base and
	// the reader's snapshot, sorted and merged; ranges that became zeros
	// count as changed. It is a hint: Run verifies it by sampling.
	Changed(ctx context.Context, base string) ([]blockdev.Extent, error)
	// DiffMode says how exact Changed is, for the checkpoint's rbd.diff
	// tag ("exact", or "whole-object (fast-diff)").
	DiffMode() string
}

// Tagger is a Reader that records facts about its device on the
// checkpoint (pool, image, image ID). Later backups plan from them, so
// they are part of the repository format (docs/rbd.md).
type Tagger interface {
	Tags() map[string]string
}

// Snap is one snapshot of a device. The ID tells a snapshot from a later
// one that reuses its name.
type Snap struct {
	ID   uint64
	Name string
}

// Snapshotter takes and removes the snapshots of one device; Run does the
// rest (which base to diff against, when to remove what). The RBD one
// snapshots through librbd; one that snapshots through the Cinder API
// reads the same RBD image (see the package documentation).
//
// Contract: List sees every snapshot that Create made and Remove has not
// removed. Create either makes a snapshot and returns it, or fails and
// leaves none behind. Remove of a snapshot that is gone is not an error.
// Managed must be true exactly for the names Create makes for this
// repository: Run removes those and never any other snapshot.
type Snapshotter interface {
	// DeviceID identifies the device itself, not its name: a device
	// deleted and recreated under the same name gets a new ID, and a
	// parent of another ID is no base.
	DeviceID() string
	// List returns the device's snapshots now.
	List(ctx context.Context) ([]Snap, error)
	// Create takes a new snapshot under a name of its choosing.
	Create(ctx context.Context) (Snap, error)
	// Remove removes the snapshot called name.
	Remove(ctx context.Context, name string) error
	// Managed reports whether the snapshot called name is one Create made
	// for this repository.
	Managed(name string) bool
}

// Live returns a Source that reads r as it is, with no snapshot: a plain
// file or block device. Run does not close r; the caller does.
func Live(r Reader) Source { return live{r} }

type live struct{ r Reader }

func (l live) Name() string           { return l.r.Name() }
func (l live) Snapshots() Snapshotter { return nil }
func (l live) Open(context.Context, string) (Reader, error) {
	return unclosed{l.r}, nil
}

// unclosed leaves closing to whoever opened the reader.
type unclosed struct{ Reader }

func (unclosed) Close() error { return nil }
