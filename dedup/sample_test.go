package dedup

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

func TestCompareBlocks(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	bs := int64(r.Config().BlockSize)
	// Blocks: 0 data, 1 hole, 2 data, 3 a short tail of data.
	size := 3*bs + 100
	data := make([]byte, size)
	copy(data, bytes.Repeat([]byte{1}, int(bs)))
	copy(data[2*bs:], bytes.Repeat([]byte{2}, int(bs)+100))
	cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cp, bm, err := r.LoadCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	all := []int64{0, 1, 2, 3}

	var calls atomic.Int64
	bad, err := r.CompareBlocks(ctx, cp, bm, newMemSource("vol", data), all, 3, func() { calls.Add(1) })
	if err != nil || len(bad) != 0 {
		t.Fatalf("same volume: mismatches %v, err %v", bad, err)
	}
	if calls.Load() != 4 {
		t.Errorf("done called %d times, want 4", calls.Load())
	}

	changed := slices.Clone(data)
	changed[bs+5] = 9       // hole became data
	clear(changed[:bs])     // data became zeros
	changed[size-1] ^= 0xff // tail changed
	bad, err = r.CompareBlocks(ctx, cp, bm, newMemSource("vol", changed), all, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 1, 3}; !slices.Equal(bad, want) {
		t.Errorf("mismatches %v, want %v", bad, want)
	}

	if _, err := r.CompareBlocks(ctx, cp, bm, newMemSource("vol", data[:bs]), all, 1, nil); err == nil {
		t.Error("a source of another size compared without error")
	}
	if _, err := r.CompareBlocks(ctx, cp, bm, newMemSource("vol", data), []int64{4}, 1, nil); err == nil {
		t.Error("a block past the end compared without error")
	}
	if r.BlockChunkID(data[:bs]) != bm.Chunks[0].ID {
		t.Error("BlockChunkID differs from the ID backup gave the block")
	}
}

func TestBadBase(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	cp, err := r.Backup(ctx, newMemSource("vol", bytes.Repeat([]byte{7}, 1<<20)), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bad, err := r.IsBadBase(ctx, cp.ID); err != nil || bad {
		t.Fatalf("fresh checkpoint: IsBadBase = %v, %v", bad, err)
	}
	if err := r.MarkBadBase(ctx, cp.ID[:13], "diff missed block 3"); err != nil {
		t.Fatal(err)
	}
	m, err := r.BadBaseOf(ctx, cp.ID)
	if err != nil || m == nil || m.Reason != "diff missed block 3" || m.ID != cp.ID {
		t.Fatalf("BadBaseOf = %+v, %v", m, err)
	}
	if err := r.MarkBadBase(ctx, "no-such-checkpoint", "x"); !errors.Is(err, ErrCheckpointNotFound) {
		t.Errorf("marking a missing checkpoint: err = %v, want ErrCheckpointNotFound", err)
	}
	// The mark is not a checkpoint and does not disturb listing or verify.
	cps, err := r.Checkpoints(ctx)
	if err != nil || len(cps) != 1 {
		t.Fatalf("Checkpoints = %d, %v; want 1", len(cps), err)
	}
	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil || !rep.OK {
		t.Fatalf("verify after marking: %+v, %v", rep, err)
	}
}
