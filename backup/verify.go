package backup

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

// verifySample re-reads a random sample of the blocks the diff called
// unchanged and compares them with the parent: a diff is a hint, and Ceph
// has shipped diff bugs. Any difference fails the backup before anything
// is committed.
func verifySample(ctx context.Context, repo *dedup.Repository, o Options, parentID string, src dedup.Source, changed []dedup.Extent, workers int, tags map[string]string) error {
	pcp, pbm, err := repo.LoadCheckpoint(ctx, parentID)
	if err != nil {
		return fmt.Errorf("load parent: %w", err)
	}
	bs := int64(pcp.BlockSize)
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	sample, unchanged := sampleUnchanged(pbm.Blocks, bs, changed, o.VerifySample, rng)
	tags[rbd.TagSampled] = fmt.Sprintf("%d of %d", len(sample), unchanged)
	if len(sample) == 0 {
		return nil
	}
	bad, err := Compare(ctx, repo, o.Report, "verify diff", pcp, pbm, src, sample, workers)
	if err != nil {
		return fmt.Errorf("verify RBD diff: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("RBD diff missed changes at offset %d (%d of %d sampled unchanged blocks differ from checkpoint %s): refusing this incremental; run a full backup with --full",
			bad[0]*bs, len(bad), len(sample), pcp.ID)
	}
	tags[rbd.TagSampledBytes] = strconv.FormatInt(min(int64(len(sample))*bs, pcp.Size), 10)
	return nil
}

// Compare compares the given blocks of src with checkpoint cp (bm is its
// block map) as one reported stage called label, and returns the numbers
// of the blocks that differ.
func Compare(ctx context.Context, r *dedup.Repository, rep Reporter, label string, cp *dedup.Checkpoint, bm *dedup.BlockMap, src dedup.Source, blocks []int64, workers int) ([]int64, error) {
	st := rep.stage(label)
	defer st.Done()
	var done atomic.Int64
	total := len(blocks)
	return r.CompareBlocks(ctx, cp, bm, src, blocks, workers, func() {
		if n := done.Add(1); n%8 == 0 || int(n) == total {
			st.Blocks(int(n), total)
		}
	})
}
