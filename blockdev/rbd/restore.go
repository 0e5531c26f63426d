//go:build ceph

package rbd

import (
	"context"

	"cairn/blockdev"
	"cairn/dedup"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Force writes into an existing image at least the checkpoint's size.
	Force  bool
	Report Reporter
}

// Restore writes checkpoint cp into the image to: a new image of the
// checkpoint's size, or with Force an existing one at least that large.
// Only data blocks are written, 16 at a time, so a new image stays
// sparse; the holes of an existing image are deallocated. A failed
// restore removes an image it created. It returns the bytes written.
func Restore(ctx context.Context, cl *Cluster, r *dedup.Repository, cp *dedup.Checkpoint, to Spec, o RestoreOptions) (int64, error) {
	tgt, err := cl.CreateTarget(ctx, to, cp.Size, blockdev.TargetOptions{Force: o.Force})
	if err != nil {
		return 0, err
	}
	w := &blockdev.CountingWriter{W: tgt}
	st := o.Report.stage("restore")
	_, err = r.Restore(ctx, cp.ID, w, dedup.RestoreOptions{Zero: tgt.Zero, Progress: st.Bytes})
	st.Done()
	if err != nil {
		if tgt.Fresh() {
			if rerr := tgt.Remove(); rerr != nil {
				o.Report.warnf("could not remove the partly restored image: %v", rerr)
			}
		} else if cerr := tgt.Close(); cerr != nil {
			o.Report.warnf("%v", cerr)
		}
		return w.Written(), err
	}
	return w.Written(), tgt.Close()
}
