package backup

import (
	"context"
	"io"

	"cairn/blockdev"
	"cairn/dedup"
)

// Target is what a restore writes: a file, a block device, an RBD image.
//
// Contract: Zero makes a range read as zeros (a no-op where the target is
// fresh and sparse). Close completes the restore: it flushes and, for a
// target written under a temporary name, moves it into place; a restore is
// done only when Close returns nil. Abort gives the restore up and leaves
// the target as it was before (a temporary file or a created image is
// removed; an existing device keeps what was written).
type Target interface {
	io.WriterAt
	Zero(off, length int64) error
	Close() error
	Abort() error
}

var (
	_ Target = (*blockdev.FileTarget)(nil)
)

// networkTarget is a target whose every write waits on the network (an
// RBD image): see dedup.RestoreOptions.NetworkTarget.
type networkTarget interface{ OverNetwork() bool }

// freshTarget is a target that may have been created by this restore, and
// then reads zeros wherever nothing is written: see
// dedup.RestoreOptions.Sparse.
type freshTarget interface{ Fresh() bool }

var _ freshTarget = (*blockdev.FileTarget)(nil)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	Report Reporter
}

// Restore writes checkpoint cp into t and completes t (Close), or gives
// it up (Abort) when anything fails, cancellation included. Only data
// blocks are written; holes are zeroed (Target.Zero). It returns the
// bytes written.
func Restore(ctx context.Context, repo *dedup.Repository, cp *dedup.Checkpoint, t Target, o RestoreOptions) (int64, error) {
	w := &blockdev.CountingWriter{W: t}
	st := o.Report.stage("restore")
	nt, ok := t.(networkTarget)
	ft, fresh := t.(freshTarget)
	ro := dedup.RestoreOptions{Zero: t.Zero, Progress: st.Bytes, NetworkTarget: ok && nt.OverNetwork(),
		Sparse: fresh && ft.Fresh()}
	_, err := repo.Restore(ctx, cp.ID, w, ro)
	st.Done()
	if err != nil {
		if aerr := t.Abort(); aerr != nil {
			o.Report.warnf("could not give up the partly restored volume: %v", aerr)
		}
		return w.Written(), err
	}
	return w.Written(), t.Close()
}
