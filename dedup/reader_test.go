package dedup

import (
	"bytes"
	"context"
	"testing"
)

// TestWarmHeaders: after WarmHeaders every pack the checkpoint names has
// its header decoded in the cache, so first reads of its chunks need no
// header reads.
func TestWarmHeaders(t *testing.T) {
	r := testRepository(t)
	ctx := context.Background()
	cp := backup(t, r, randomData(41, 40<<16))
	dropHeaderCaches(r)
	rd, err := r.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.bm.Packs) < 2 {
		t.Fatalf("the checkpoint names %d packs; the test needs several", len(rd.bm.Packs))
	}
	rd.WarmHeaders(ctx)
	for _, p := range rd.bm.Packs {
		if _, ok := r.headers.Get(p); !ok {
			t.Errorf("pack %s: header not cached after WarmHeaders", p)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	dropHeaderCaches(r)
	rd.WarmHeaders(canceled) // returns at once, reading nothing
	for _, p := range rd.bm.Packs {
		if _, ok := r.headers.Get(p); ok {
			t.Errorf("pack %s: header read by a canceled WarmHeaders", p)
		}
	}
}

// TestReaderSequentialGuess: partial reads decode only their frames
// unless the reader reads in sequence. One read next to the previous one is
// chance (random reads do that about once in a hundred, and a whole-chunk
// decode for each was their p99); two in a row are a sequential reader,
// whose chunks are then loaded whole through the cache.
func TestReaderSequentialGuess(t *testing.T) {
	const bs = 64 << 10
	r := testRepository(t)
	ctx := context.Background()
	data := randomData(42, 16*bs)
	cp := backup(t, r, data)
	rd, err := r.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := func(b int64) {
		t.Helper()
		p := make([]byte, 4096)
		off := b*bs + 1000
		if _, err := rd.ReadAtContext(ctx, p, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, data[off:off+4096]) {
			t.Fatalf("block %d: wrong bytes", b)
		}
	}
	whole := func(b int64) bool {
		ref, _ := rd.bm.Lookup(b)
		return r.chunks.has(ref.ID)
	}
	for _, step := range []struct {
		block int64
		whole bool
	}{
		{9, false},  // first read
		{2, false},  // far away
		{3, false},  // next to the previous: chance, not yet a sequence
		{12, false}, // far again: the streak starts over
		{13, false},
		{14, true}, // the second neighbour in a row: sequential
		{15, true},
		{1, false}, // far: random again
	} {
		read(step.block)
		if got := whole(step.block); got != step.whole {
			t.Fatalf("after reading block %d: chunk cached whole = %v, want %v", step.block, got, step.whole)
		}
	}
}
