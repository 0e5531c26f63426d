package main

import (
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func newRestoreCmd(a *app) *cobra.Command {
	var (
		to    string
		force bool
		ceph  cephFlags
		live  liveFlags
	)
	cmd := &cobra.Command{
		Use:   "restore CHECKPOINT --to PATH|rbd:POOL/IMAGE",
		Short: "Restore a checkpoint to a file or block device",
		Long: `Write the volume of CHECKPOINT (its ID or a unique prefix of it, see
'cairn checkpoints') to PATH.

A file is restored as a sparse file (the volume's holes, and the zero
pages inside its data, take no space) under a temporary name in PATH's directory, ".NAME.<random>.cairn-partial",
and renamed to PATH once complete and synced: PATH never holds a partial
volume. An existing PATH, or one that another restore creates meanwhile,
is refused unless --force is given; with --force an existing file (or a
symlink at PATH) is replaced when the restore completes, and of two forced
restores to one path the last to finish wins. A block device is only
written with --force, in place; it must be at least as large as the volume
and not in use, and its holes are zeroed. The restore is complete when
cairn exits 0; a failed restore leaves PATH as it was.

The repository's index is not needed, so a restore may run while a backup
is in progress.`,
		Example: `  cairn restore 0197c2a4 --to /tmp/vm1.img
  cairn restore 0197c2a4-5e1b --to /dev/vg0/db --force`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := live.check(cmd.Flags(), to); err != nil {
				return err
			}
			if live.live {
				return a.restoreLive(ctx, args[0], to, force, live)
			}
			return a.withRepo(ctx, readOnly, func(r *dedup.Repository) error {
				rd, err := r.OpenCheckpoint(ctx, args[0])
				if err != nil {
					return err
				}
				cp := rd.Checkpoint()
				if rbd.IsSpec(to) {
					return a.restoreRBD(ctx, r, cp, to, force, &ceph)
				}
				tgt, err := blockdev.CreateFileTarget(to, cp.Size, blockdev.TargetOptions{Force: force})
				if err != nil {
					return err
				}
				start := time.Now()
				// Zero is a no-op on a freshly created file, and clears the
				// holes of a block device.
				n, err := backup.Restore(ctx, r, cp, tgt, backup.RestoreOptions{Report: a.reporter()})
				if err != nil {
					return err
				}
				return a.printRestore(cp, to, n, time.Since(start))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "file, block device or rbd:POOL/IMAGE to write the volume to (required)")
	f.BoolVar(&force, "force", false, "overwrite an existing file or a block device")
	ceph.register(f)
	live.register(f)
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

type restoreJSON struct {
	ID           string  `json:"id"`
	To           string  `json:"to"`
	Size         int64   `json:"size"`
	BytesWritten int64   `json:"bytes_written"`
	Seconds      float64 `json:"seconds"`
	MBPerSec     float64 `json:"mb_per_s"`
}

func (a *app) printRestore(cp *dedup.Checkpoint, to string, written int64, d time.Duration) error {
	if abs, err := filepath.Abs(to); err == nil && !rbd.IsSpec(to) {
		to = abs
	}
	if a.jsonOut {
		return writeJSON(a.stdout, restoreJSON{
			ID: cp.ID, To: to, Size: cp.Size, BytesWritten: written,
			Seconds: d.Seconds(), MBPerSec: mbPerSec(written, d),
		})
	}
	if a.quiet {
		return nil
	}
	var t kv
	t.add("restored", "%s", cp.ID)
	t.add("source", "%s", cp.Source)
	t.add("to", "%s", to)
	t.add("size", "%s", formatSize(cp.Size))
	t.add("written", "%s", formatSize(written))
	t.add("duration", "%s", formatDuration(d))
	t.add("speed", "%.1f MB/s", mbPerSec(written, d))
	return t.write(a.stdout)
}
