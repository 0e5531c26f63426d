package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"cairn/dedup"
)

// This file holds the maintenance commands: verify, repair, forget, prune.

func newVerifyCmd(a *app) *cobra.Command {
	var (
		deep bool
		vs   verifySourceFlags
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the repository for missing or damaged data",
		Long: `Check that every shard of every pack and manifest is present and passes
its checksum, and that every chunk a checkpoint references is in some pack.
--deep also reads every chunk back, decrypts, decompresses and rehashes it,
which reads the whole repository.

Exits 0 when the repository is intact and 1 when anything is wrong; damaged
shards can usually be rewritten from parity with 'cairn repair'.

--against-source CHECKPOINT instead compares every block of an RBD
checkpoint with the snapshot it was made from, and marks a checkpoint that
differs so that no backup uses it as a base (docs/rbd.md).`,
		Example: `  cairn verify
  cairn verify --deep
  cairn --json verify
  cairn verify --against-source 0197c2a4`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if vs.checkpoint != "" {
				return a.verifyAgainstSource(ctx, &vs)
			}
			return a.withRepo(ctx, withIndex, func(r *dedup.Repository) error {
				line := a.newProgress("verify")
				start := time.Now()
				rep, err := r.Verify(ctx, dedup.VerifyOptions{
					Deep: deep,
					Progress: func(p dedup.VerifyProgress) {
						line.count(p.PacksDone, p.Packs, "packs", time.Since(start))
					},
				})
				a.doneProgress(line)
				if err != nil {
					return err
				}
				if err := a.printVerify(rep, deep); err != nil {
					return err
				}
				if !rep.OK {
					return fmt.Errorf("verify found %d damaged shards, %d bad chunks, %d missing chunks, %d unrecoverable objects: run `cairn repair`",
						len(rep.DamagedShards), len(rep.BadChunks), len(rep.MissingChunks), len(rep.Unrecoverable))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&deep, "deep", false, "also read, decrypt, decompress and rehash every chunk")
	vs.register(cmd.Flags())
	cmd.MarkFlagsMutuallyExclusive("deep", "against-source")
	return cmd
}

type shardDamageJSON struct {
	Object  string `json:"object"`
	Shard   int    `json:"shard"`
	Problem string `json:"problem"`
}

func shardDamages(ds []dedup.ShardDamage) []shardDamageJSON {
	out := make([]shardDamageJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, shardDamageJSON{Object: d.Object, Shard: d.Shard, Problem: d.Problem})
	}
	return out
}

// nonNil makes a nil list print as [] in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type verifyJSON struct {
	OK            bool              `json:"ok"`
	Deep          bool              `json:"deep"`
	Packs         int               `json:"packs"`
	Manifests     int               `json:"manifests"`
	Chunks        int               `json:"chunks"`
	DamagedShards []shardDamageJSON `json:"damaged_shards"`
	BadChunks     []string          `json:"bad_chunks"`
	MissingChunks []string          `json:"missing_chunks"`
	Unrecoverable []string          `json:"unrecoverable"`
	Orphans       []string          `json:"orphans"`
}

func (a *app) printVerify(rep *dedup.VerifyReport, deep bool) error {
	if a.jsonOut {
		return writeJSON(a.stdout, verifyJSON{
			OK: rep.OK, Deep: deep, Packs: rep.Packs, Manifests: rep.Manifests, Chunks: rep.Chunks,
			DamagedShards: shardDamages(rep.DamagedShards), BadChunks: nonNil(rep.BadChunks),
			MissingChunks: nonNil(rep.MissingChunks), Unrecoverable: nonNil(rep.Unrecoverable),
			Orphans: nonNil(rep.Orphans),
		})
	}
	if a.quiet && rep.OK {
		return nil
	}
	w := a.stdout
	mode := ""
	if deep {
		mode = " (deep)"
	}
	fmt.Fprintf(w, "checked %d packs, %d manifests, %d chunks%s\n", rep.Packs, rep.Manifests, rep.Chunks, mode)
	for _, d := range rep.DamagedShards {
		fmt.Fprintf(w, "damaged shard   %s shard %d: %s\n", d.Object, d.Shard, d.Problem)
	}
	for _, c := range rep.BadChunks {
		fmt.Fprintf(w, "bad chunk       %s\n", c)
	}
	for _, c := range rep.MissingChunks {
		fmt.Fprintf(w, "missing chunk   %s\n", c)
	}
	for _, o := range rep.Unrecoverable {
		fmt.Fprintf(w, "unrecoverable   %s\n", o)
	}
	for _, o := range rep.Orphans {
		fmt.Fprintf(w, "orphan          %s (used by no checkpoint; `cairn prune` removes it after the grace period)\n", o)
	}
	if rep.OK {
		_, err := fmt.Fprintln(w, "repository OK")
		return err
	}
	return nil
}

func newRepairCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "repair",
		Short: "Rewrite missing or damaged shards from parity",
		Long: `Find shards that are missing or fail their checksum and rewrite them from
the surviving shards of the same object (any data-shards good shards are
enough). Objects with fewer good shards than that cannot be repaired; they
are listed and cairn exits 1.`,
		Example: `  cairn verify || cairn repair`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withRepo(cmd.Context(), withIndex, func(r *dedup.Repository) error {
				rep, err := r.Repair(cmd.Context())
				if err != nil {
					return err
				}
				if err := a.printRepair(rep); err != nil {
					return err
				}
				if n := len(rep.Unrecoverable); n > 0 {
					return fmt.Errorf("%d objects are unrecoverable (fewer good shards than data shards); the checkpoints using them cannot be fully restored", n)
				}
				return nil
			})
		},
	}
}

type repairJSON struct {
	Rewritten     []shardDamageJSON `json:"rewritten"`
	Unrecoverable []string          `json:"unrecoverable"`
	Orphans       []string          `json:"orphans"`
}

func (a *app) printRepair(rep *dedup.RepairReport) error {
	if a.jsonOut {
		return writeJSON(a.stdout, repairJSON{Rewritten: shardDamages(rep.Rewritten), Unrecoverable: nonNil(rep.Unrecoverable), Orphans: nonNil(rep.Orphans)})
	}
	w := a.stdout
	if !a.quiet {
		for _, d := range rep.Rewritten {
			fmt.Fprintf(w, "rewrote         %s shard %d (%s)\n", d.Object, d.Shard, d.Problem)
		}
	}
	for _, o := range rep.Unrecoverable {
		fmt.Fprintf(w, "unrecoverable   %s\n", o)
	}
	for _, o := range rep.Orphans {
		fmt.Fprintf(w, "orphan          %s (an interrupted backup's leftover: `cairn prune` removes it)\n", o)
	}
	if a.quiet {
		return nil
	}
	var err error
	switch {
	case len(rep.Rewritten) == 0 && len(rep.Unrecoverable) == 0:
		_, err = fmt.Fprintln(w, "nothing to repair")
	case len(rep.Rewritten) > 0:
		_, err = fmt.Fprintf(w, "rewrote %d shards\n", len(rep.Rewritten))
	}
	return err
}

func newForgetCmd(a *app) *cobra.Command {
	var (
		p     dedup.ForgetPolicy
		prune bool
	)
	cmd := &cobra.Command{
		Use:   "forget [ID...]",
		Short: "Remove checkpoints by ID or by a retention policy",
		Long: `Remove checkpoints: those named by ID (or unique prefix), and those a
retention policy does not keep. The policy applies to each source on its
own: it keeps the --keep-last newest checkpoints, and the newest one of each
of the last --keep-daily days, --keep-weekly weeks and --keep-monthly months
(local time) that have one; a checkpoint any rule keeps is kept. --source
limits the policy to one source. At least one rule or one ID is required.

Forgetting only removes the checkpoints; the space their data used is freed
by 'cairn prune', or at once with --prune. --dry-run shows what would be
removed and changes nothing (and skips --prune).`,
		Example: `  cairn forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune
  cairn forget --keep-last 3 --source /var/lib/images/vm1.img --dry-run
  cairn forget 0197c2a4 0197c2b9`,
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules := p.KeepLast != 0 || p.KeepDaily != 0 || p.KeepWeekly != 0 || p.KeepMonthly != 0
			if !rules && len(args) == 0 {
				return usagef("nothing to forget: give checkpoint IDs or a rule (--keep-last, --keep-daily, --keep-weekly, --keep-monthly); refusing to remove checkpoints without one")
			}
			p.IDs = args
			p.Source = sourceName(p.Source)
			ctx := cmd.Context()
			return a.withRepo(ctx, freeingSpace, func(r *dedup.Repository) error {
				res, err := r.Forget(ctx, p)
				if err != nil {
					return err
				}
				var pr *dedup.PruneReport
				// A dry-run prune would still see the checkpoints a dry-run
				// forget kept, so it would report nothing useful: skip it.
				if prune && !p.DryRun {
					if pr, err = r.Prune(ctx, dedup.PruneOptions{DryRun: p.DryRun}); err != nil {
						// The checkpoints are gone; say so before failing.
						_ = a.printForget(res, nil, p.DryRun, prune)
						return fmt.Errorf("prune: %w", err)
					}
				}
				return a.printForget(res, pr, p.DryRun, prune)
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.KeepLast, "keep-last", 0, "keep the N newest checkpoints (-1: all)")
	f.IntVar(&p.KeepDaily, "keep-daily", 0, "keep the newest checkpoint of each of the last N days that have one (-1: all)")
	f.IntVar(&p.KeepWeekly, "keep-weekly", 0, "keep the newest checkpoint of each of the last N weeks that have one (-1: all)")
	f.IntVar(&p.KeepMonthly, "keep-monthly", 0, "keep the newest checkpoint of each of the last N months that have one (-1: all)")
	f.StringVar(&p.Source, "source", "", "apply the rules only to this source's checkpoints")
	f.BoolVar(&p.DryRun, "dry-run", false, "show what would be removed; change nothing")
	f.BoolVar(&prune, "prune", false, "run prune afterwards to free the space")
	return cmd
}

type forgetJSON struct {
	DryRun bool                `json:"dry_run"`
	Keep   []*dedup.Checkpoint `json:"keep"`
	Remove []*dedup.Checkpoint `json:"remove"`
	Prune  *pruneJSON          `json:"prune,omitempty"`
}

func nonNilCPs(cps []*dedup.Checkpoint) []*dedup.Checkpoint {
	if cps == nil {
		return []*dedup.Checkpoint{}
	}
	return cps
}

func (a *app) printForget(res *dedup.ForgetResult, pr *dedup.PruneReport, dryRun, pruneAsked bool) error {
	if a.jsonOut {
		out := forgetJSON{DryRun: dryRun, Keep: nonNilCPs(res.Keep), Remove: nonNilCPs(res.Remove)}
		if pr != nil {
			pj := toPruneJSON(pr, dryRun)
			out.Prune = &pj
		}
		return writeJSON(a.stdout, out)
	}
	if a.quiet {
		return nil
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	tw := newTable(a.stdout)
	for _, cp := range res.Remove {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", verb, cp.ID, formatTime(cp.CreatedAt), cp.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s %d checkpoints, kept %d\n", verb, len(res.Remove), len(res.Keep))
	if pr != nil {
		return a.printPruneHuman(pr, dryRun)
	}
	if dryRun && pruneAsked {
		fmt.Fprintln(a.stdout, "prune skipped in a dry run")
	}
	if !dryRun && len(res.Remove) > 0 {
		fmt.Fprintln(a.stdout, "run `cairn prune` to free the space they used")
	}
	return nil
}

func newPruneCmd(a *app) *cobra.Command {
	var o dedup.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Free the space of data no checkpoint references",
		Long: `Delete packs that hold no chunk any checkpoint references, and compact
packs whose live fraction is below --compact-below by copying their live
chunks into new packs. Packs younger than --grace are left alone, since a
running backup (on this or another host) may be about to reference them:
--grace 0 is only safe when no backup is running. Also removes the remains of
checkpoints whose commit was interrupted.

Run it after 'cairn forget'. --dry-run reports what would be done.`,
		Example: `  cairn prune
  cairn prune --grace 24h --compact-below 0.5 --dry-run`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Grace < 0 {
				return usagef("--grace must not be negative")
			}
			if o.CompactBelow < 0 || o.CompactBelow > 1 {
				return usagef("--compact-below must be between 0 and 1")
			}
			// dedup reads zero as "the default"; on the command line
			// zero means none.
			if o.Grace == 0 {
				o.Grace = -1
			}
			if o.CompactBelow == 0 {
				o.CompactBelow = -1
			}
			return a.withRepo(cmd.Context(), freeingSpace, func(r *dedup.Repository) error {
				rep, err := r.Prune(cmd.Context(), o)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return writeJSON(a.stdout, toPruneJSON(rep, o.DryRun))
				}
				if a.quiet {
					return nil
				}
				return a.printPruneHuman(rep, o.DryRun)
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Grace, "grace", time.Hour, "leave packs younger than this alone (0: no grace period)")
	f.Float64Var(&o.CompactBelow, "compact-below", 0.2, "compact packs whose live fraction is below this, 0 to 1 (0: never compact)")
	f.BoolVar(&o.DryRun, "dry-run", false, "report what would be done; change nothing")
	return cmd
}

type pruneJSON struct {
	DryRun                     bool  `json:"dry_run"`
	PacksTotal                 int   `json:"packs_total"`
	PacksDeleted               int   `json:"packs_deleted"`
	PacksCompacted             int   `json:"packs_compacted"`
	PacksKeptGrace             int   `json:"packs_kept_grace"`
	ManifestsIncompleteRemoved int   `json:"manifests_incomplete_removed"`
	BytesFreed                 int64 `json:"bytes_freed"`
	ChunksLive                 int64 `json:"chunks_live"`
	ChunksDead                 int64 `json:"chunks_dead"`
	// DeltasRewritten: delta chunks stored whole again so that the chunks
	// they took pages from could go.
	DeltasRewritten int `json:"deltas_rewritten"`
	// PacksLeft and BlockedBy: another process was backing up or
	// pruning, so nothing was deleted.
	PacksLeft int    `json:"packs_left,omitempty"`
	BlockedBy string `json:"blocked_by,omitempty"`
}

func toPruneJSON(r *dedup.PruneReport, dryRun bool) pruneJSON {
	return pruneJSON{
		DryRun: dryRun, PacksTotal: r.PacksTotal, PacksDeleted: r.PacksDeleted, PacksCompacted: r.PacksCompacted,
		PacksKeptGrace: r.PacksKeptGrace, ManifestsIncompleteRemoved: r.ManifestsIncompleteRemoved,
		BytesFreed: r.BytesFreed, ChunksLive: r.ChunksLive, ChunksDead: r.ChunksDead, DeltasRewritten: r.DeltasRewritten,
		PacksLeft: r.PacksLeft, BlockedBy: r.BlockedBy,
	}
}

func (a *app) printPruneHuman(r *dedup.PruneReport, dryRun bool) error {
	if dryRun {
		fmt.Fprintln(a.stdout, "prune dry run: nothing was changed")
	}
	if r.BlockedBy != "" {
		fmt.Fprintf(a.stdout, "%d packs left for later: another cairn process is %s\n", r.PacksLeft, r.BlockedBy)
	}
	var t kv
	t.add("packs", "%d total, %d deleted, %d compacted, %d kept for the grace period",
		r.PacksTotal, r.PacksDeleted, r.PacksCompacted, r.PacksKeptGrace)
	t.add("chunks", "%d live, %d dead", r.ChunksLive, r.ChunksDead)
	if r.DeltasRewritten > 0 {
		t.add("deltas", "%d rewritten whole, freeing the chunks they took pages from", r.DeltasRewritten)
	}
	if r.ManifestsIncompleteRemoved > 0 {
		t.add("incomplete", "%d interrupted checkpoints removed", r.ManifestsIncompleteRemoved)
	}
	t.add("freed", "%s", formatSize(r.BytesFreed))
	return t.write(a.stdout)
}
