package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"cairn/dedup"
)

func newCheckpointsCmd(a *app) *cobra.Command {
	var source string
	cmd := &cobra.Command{
		Use:   "checkpoints",
		Short: "List the checkpoints in the repository",
		Long: `List the checkpoints in the repository, oldest first: ID, creation time
(local), source, volume size, allocated (non-hole) bytes, bytes new to the
repository and bytes it added to the shard stores.

Any unique prefix of an ID may be passed to 'cairn restore' and
'cairn forget'. With --json prints an array of checkpoint objects.`,
		Example: `  cairn checkpoints
  cairn checkpoints --source /var/lib/images/vm1.img
  cairn --json checkpoints`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withRepo(cmd.Context(), readOnly, func(r *dedup.Repository) error {
				cps, err := r.Checkpoints(cmd.Context())
				if err != nil {
					return err
				}
				if source != "" {
					cps = filterSource(cps, source)
				}
				return a.printCheckpoints(cps)
			})
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "list only the checkpoints of this source (path as backed up)")
	return cmd
}

// filterSource keeps the checkpoints of source.
func filterSource(cps []*dedup.Checkpoint, source string) []*dedup.Checkpoint {
	source = sourceName(source)
	out := cps[:0:0]
	for _, cp := range cps {
		if cp.Source == source {
			out = append(out, cp)
		}
	}
	return out
}

// sourceName turns a --source given by a user into the name checkpoints
// record: backups name a file or device by its absolute path, so a relative
// path that exists here is made absolute. Anything else is taken as it is.
func sourceName(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	if _, err := os.Stat(s); err != nil {
		return s
	}
	if abs, err := filepath.Abs(s); err == nil {
		return abs
	}
	return s
}

func (a *app) printCheckpoints(cps []*dedup.Checkpoint) error {
	if a.jsonOut {
		if cps == nil {
			cps = []*dedup.Checkpoint{}
		}
		return writeJSON(a.stdout, cps)
	}
	if len(cps) == 0 {
		_, err := fmt.Fprintln(a.stdout, "no checkpoints")
		return err
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tCREATED\tSOURCE\tSIZE\tALLOCATED\tNEW\tSTORED")
	for _, cp := range cps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cp.ID, formatTime(cp.CreatedAt), cp.Source,
			formatSize(cp.Size), formatSize(cp.AllocatedBytes), formatSize(cp.NewBytes), formatSize(cp.StoredBytes))
	}
	return tw.Flush()
}
