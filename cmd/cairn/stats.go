package main

import (
	"github.com/spf13/cobra"

	"cairn/dedup"
)

func newStatsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show how much the repository holds and saves",
		Long: `Show the repository's totals: checkpoints, packs and chunks; the logical
size of all checkpoints, their allocated bytes, the unique bytes actually
kept, and the bytes on disk in the shard stores (including parity); the
deduplication ratio (allocated / unique) and the compression ratio; and the
geometry.`,
		Example: `  cairn stats
  cairn --json stats`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withRepo(cmd.Context(), withIndex, func(r *dedup.Repository) error {
				s, err := r.Stats(cmd.Context())
				if err != nil {
					return err
				}
				return a.printStats(s)
			})
		},
	}
}

type statsJSON struct {
	Checkpoints      int     `json:"checkpoints"`
	Packs            int     `json:"packs"`
	Chunks           int64   `json:"chunks"`
	LogicalBytes     int64   `json:"logical_bytes"`
	AllocatedBytes   int64   `json:"allocated_bytes"`
	UniqueBytes      int64   `json:"unique_bytes"`
	StoredBytes      int64   `json:"stored_bytes"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
	DataShards       int     `json:"data_shards"`
	ParityShards     int     `json:"parity_shards"`
	BlockSize        int     `json:"block_size"`
	Encrypted        bool    `json:"encrypted"`
}

func (a *app) printStats(s *dedup.RepoStats) error {
	if a.jsonOut {
		return writeJSON(a.stdout, statsJSON{
			Checkpoints: s.Checkpoints, Packs: s.Packs, Chunks: s.Chunks,
			LogicalBytes: s.LogicalBytes, AllocatedBytes: s.AllocatedBytes, UniqueBytes: s.UniqueBytes,
			StoredBytes: s.StoredBytes, DedupRatio: s.DedupRatio, CompressionRatio: s.CompressionRatio,
			DataShards: s.DataShards, ParityShards: s.ParityShards, BlockSize: s.BlockSize, Encrypted: s.Encrypted,
		})
	}
	var t kv
	t.add("checkpoints", "%d", s.Checkpoints)
	t.add("packs", "%d", s.Packs)
	t.add("chunks", "%d", s.Chunks)
	t.add("logical", "%s", formatSize(s.LogicalBytes))
	t.add("allocated", "%s", formatSize(s.AllocatedBytes))
	t.add("unique", "%s", formatSize(s.UniqueBytes))
	t.add("stored", "%s (with parity)", formatSize(s.StoredBytes))
	t.add("dedup ratio", "%s", formatRatio(s.DedupRatio))
	t.add("compression", "%s", formatRatio(s.CompressionRatio))
	t.add("geometry", "%d data + %d parity shards, %s blocks", s.DataShards, s.ParityShards, formatSize(int64(s.BlockSize)))
	t.add("encrypted", "%s", yesNo(s.Encrypted))
	return t.write(a.stdout)
}
