package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn/backup"
	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
)

func newBackupCmd(a *app) *cobra.Command {
	var (
		source, parent string
		full           bool
		tags           []string
		rbdFlags       rbdBackupFlags
	)
	cmd := &cobra.Command{
		Use:   "backup --source PATH|rbd:POOL/IMAGE[@SNAP]",
		Short: "Back up a disk image or block device as a new checkpoint",
		Long: `Read a disk image file or a block device and store it in the repository
as a new checkpoint. Blocks the repository already holds are not stored
again, and the holes of a sparse file are not even read.

The checkpoint's parent is the latest checkpoint of the same source (its
absolute path) unless --parent names another or --full asks for none. The
checkpoint is committed only when all of its data is safely stored: an
interrupted backup (Ctrl-C) leaves the repository as it was, apart from
unreferenced data that 'cairn prune' removes.

An rbd:POOL/IMAGE source is read from a snapshot cairn takes (or from
IMAGE@SNAP), and an incremental reads only what Ceph's diff against the
previous snapshot reports, verified by re-reading a sample of the rest
(--verify-sample); see docs/rbd.md. Builds with Ceph support only.

Prints a summary, or the checkpoint as JSON with --json. With --quiet only
the checkpoint ID is printed.`,
		Example: `  cairn backup --source /var/lib/images/vm1.img
  cairn backup --source /dev/vg0/db --tag host=db1 --tag kind=nightly
  cairn --json backup --source vm1.img --full
  cairn backup --source rbd:volumes/volume-1234 --ceph-id cinder-backup`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			tagMap, err := parseTags(tags)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if rbd.IsSpec(source) {
				return a.backupRBD(ctx, rbdBackupRequest{source: source, parent: parent, full: full, tags: tagMap, flags: &rbdFlags})
			}
			if err := rbdFlags.checkFileSource(cmd.Flags()); err != nil {
				return err
			}
			src, err := blockdev.OpenFile(source)
			if err != nil {
				return err
			}
			defer src.Close()
			return a.withRepo(ctx, withIndex, func(r *dedup.Repository) error {
				o := backup.Options{Tags: tagMap, Workers: rbdFlags.workers, Report: a.reporter()}
				switch {
				case parent != "":
					if o.Parent, err = backup.LoadParent(ctx, r, parent); err != nil {
						return err
					}
				case !full:
					if o.Parent, err = r.Latest(ctx, src.Name()); err != nil {
						return err
					}
				}
				cp, err := backup.Run(ctx, r, backup.Live(src), o)
				if err != nil {
					return err
				}
				return a.printCheckpoint(cp)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "disk image file, block device or rbd:POOL/IMAGE[@SNAP] to back up (required; see docs/rbd.md)")
	f.StringVar(&parent, "parent", "", "ID (or unique prefix) of the parent checkpoint (default: latest of the source)")
	f.BoolVar(&full, "full", false, "back up without a parent checkpoint")
	f.StringArrayVar(&tags, "tag", nil, "label the checkpoint with KEY=VALUE (repeatable)")
	rbdFlags.register(f)
	_ = cmd.MarkFlagRequired("source")
	cmd.MarkFlagsMutuallyExclusive("parent", "full")
	return cmd
}

// reporter prints the warnings of backups, restores and comparisons as
// notes and their stages as progress lines.
func (a *app) reporter() backup.Reporter {
	return backup.Reporter{Warnf: a.notef, Stage: func(label string) backup.Stage {
		return &stage{a: a, line: a.newProgress(label), start: time.Now()}
	}}
}

type stage struct {
	a     *app
	line  *progressLine
	start time.Time
}

func (s *stage) Bytes(p dedup.BackupProgress) { s.line.bytes(p) }
func (s *stage) Blocks(done, total int) {
	s.line.count(done, total, "blocks", time.Since(s.start))
}
func (s *stage) Done() { s.a.doneProgress(s.line) }

// parseTags turns KEY=VALUE flags into a map (nil when there are none).
func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, usagef("--tag %q: want KEY=VALUE", t)
		}
		m[k] = v
	}
	return m, nil
}

// printCheckpoint prints the result of a backup.
func (a *app) printCheckpoint(cp *dedup.Checkpoint) error {
	if a.jsonOut {
		return writeJSON(a.stdout, cp)
	}
	if a.quiet {
		_, err := fmt.Fprintln(a.stdout, cp.ID)
		return err
	}
	d := cp.FinishedAt.Sub(cp.CreatedAt)
	var t kv
	t.add("checkpoint", "%s", cp.ID)
	t.add("source", "%s", cp.Source)
	if cp.Parent != "" {
		t.add("parent", "%s", cp.Parent)
	} else {
		t.add("parent", "none")
	}
	t.add("size", "%s", formatSize(cp.Size))
	t.add("allocated", "%s", formatSize(cp.AllocatedBytes))
	t.add("read", "%s", formatSize(cp.ReadBytes))
	t.add("new", "%s (%d chunks)", formatSize(cp.NewBytes), cp.NewChunks)
	t.add("stored", "%s", formatSize(cp.StoredBytes))
	t.add("duration", "%s", formatDuration(d))
	t.add("speed", "%.1f MB/s", mbPerSec(cp.ReadBytes, d))
	return t.write(a.stdout)
}
