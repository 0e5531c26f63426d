package dedup

import (
	"context"
	"math"
	"testing"
)

func TestStats(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	empty, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty.DedupRatio != 0 || empty.CompressionRatio != 0 || empty.StoredBytes == 0 {
		t.Fatalf("empty repository: %+v", empty)
	}
	// Incompressible data, not a whole number of blocks, backed up twice.
	const size = 40*testBS + 1234
	data := randomData(7, size)
	for range 2 {
		if _, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Checkpoints != 2 || st.LogicalBytes != 2*size || st.AllocatedBytes != 2*size {
		t.Fatalf("checkpoint sums: %+v", st)
	}
	if st.UniqueBytes != size || st.Chunks != 41 {
		t.Fatalf("unique %d bytes in %d chunks, want %d in 41", st.UniqueBytes, st.Chunks, size)
	}
	if math.Abs(st.DedupRatio-2) > 1e-9 || math.Abs(st.CompressionRatio-1) > 0.01 {
		t.Fatalf("dedup ratio %.3f compression ratio %.3f, want 2 and 1", st.DedupRatio, st.CompressionRatio)
	}
	// k+m shards of the packs at least, plus manifests and configs.
	floor := int64(size) * int64(st.DataShards+st.ParityShards) / int64(st.DataShards)
	if st.StoredBytes < floor || st.Packs == 0 || st.BlockSize != testBS || st.Encrypted {
		t.Fatalf("stats %+v: stored bytes below %d", st, floor)
	}
}
