package dedup

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

func TestBlockMapLookup(t *testing.T) {
	// Blocks: 0 data, 1-2 hole, 3 data, 4 data, 5 hole, 6 data.
	bm := &BlockMap{
		Blocks: 7,
		Holes:  []HoleRun{{1, 2}, {5, 1}},
		Packs:  []PackID{{1}},
		Chunks: []ChunkRef{{ID: ChunkID{10}}, {ID: ChunkID{13}}, {ID: ChunkID{14}}, {ID: ChunkID{16}}},
	}
	want := map[int64]byte{0: 10, 3: 13, 4: 14, 6: 16}
	for b := int64(0); b < 7; b++ {
		ref, ok := bm.Lookup(b)
		id, data := want[b]
		if ok != data || (ok && ref.ID[0] != id) {
			t.Errorf("block %d: got ok=%v id=%d, want data=%v id=%d", b, ok, ref.ID[0], data, id)
		}
	}
}

func TestPlanReads(t *testing.T) {
	const bs = 10
	parent := &BlockMap{Blocks: 5}
	cases := []struct {
		name      string
		size      int64
		allocated []Extent
		changed   []Extent
		parent    *BlockMap
		want      []uint8
	}{
		{"whole volume", 50, nil, nil, nil, []uint8{planRead, planRead, planRead, planRead, planRead}},
		{"allocated only", 50, []Extent{{Off: 12, Len: 3}, {Off: 40, Len: 10}}, nil, nil, []uint8{planHole, planRead, planHole, planHole, planRead}},
		{"extent spanning blocks", 45, []Extent{{Off: 9, Len: 2}}, nil, nil, []uint8{planRead, planRead, planHole, planHole, planHole}},
		{"changed vs parent", 50, nil, []Extent{{Off: 25, Len: 1}}, parent, []uint8{planParent, planParent, planRead, planParent, planParent}},
		{"changed hole becomes read", 50, []Extent{{Off: 0, Len: 10}}, []Extent{{Off: 30, Len: 5}}, parent, []uint8{planParent, planHole, planHole, planRead, planHole}},
		{"changed without parent ignored", 50, []Extent{{Off: 0, Len: 10}}, []Extent{{Off: 30, Len: 5}}, nil, []uint8{planRead, planHole, planHole, planHole, planHole}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := (c.size + bs - 1) / bs
			got := planReads(n, bs, c.size, c.allocated, c.changed, c.parent)
			if !bytes.Equal(got, c.want) {
				t.Fatalf("plan %v, want %v", got, c.want)
			}
		})
	}
}

// TestIncrementalWithChanges checks that blocks outside the changed extents
// are taken from the parent without being read.
func TestIncrementalWithChanges(t *testing.T) {
	const bs = 64 << 10
	r := testRepository(t)
	ctx := context.Background()
	data := randomData(7, 8*bs)
	first, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copy(data[5*bs+100:], []byte("changed!"))
	second, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{
		Parent: first.ID, Changed: []Extent{{Off: 5*bs + 100, Len: 8}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The changed block is read whole and stored as a delta: its one
	// changed page.
	if second.ReadBytes != bs || second.NewBytes != pageSize {
		t.Fatalf("read %d new %d, want one block (%d) read and one page (%d) new", second.ReadBytes, second.NewBytes, bs, pageSize)
	}
	if second.Parent != first.ID || second.Full {
		t.Fatalf("parent %q full %v", second.Parent, second.Full)
	}
	if got := restoreBytes(t, r, second.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("incremental checkpoint restores wrong bytes")
	}
}

func TestDedupWithinAndAcrossBackups(t *testing.T) {
	const bs = 64 << 10
	r := testRepository(t)
	ctx := context.Background()
	block := randomData(9, bs)
	data := bytes.Repeat(block, 6) // six identical blocks: stored once
	cp, err := r.Backup(ctx, newMemSource("a", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cp.NewChunks != 1 || cp.NewBytes != bs {
		t.Fatalf("new chunks %d bytes %d, want 1 chunk of %d", cp.NewChunks, cp.NewBytes, bs)
	}
	again, err := r.Backup(ctx, newMemSource("b", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.NewBytes != 0 || again.StoredBytes != 0 {
		t.Fatalf("identical copy added %d new / %d stored bytes", again.NewBytes, again.StoredBytes)
	}
}

func TestConcurrentBackups(t *testing.T) {
	const bs = 64 << 10
	r := testRepository(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	datas := make([][]byte, 4)
	ids := make([]string, 4)
	errs := make([]error, 4)
	shared := randomData(100, 4*bs)
	for i := range datas {
		datas[i] = append(append([]byte(nil), shared...), randomData(uint64(i), 3*bs+17)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp, err := r.Backup(ctx, newMemSource("v", datas[i]), BackupOptions{})
			errs[i] = err
			if err == nil {
				ids[i] = cp.ID
			}
		}()
	}
	wg.Wait()
	for i := range datas {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got := restoreBytes(t, r, ids[i], int64(len(datas[i]))); !bytes.Equal(got, datas[i]) {
			t.Fatalf("backup %d restores wrong bytes", i)
		}
	}
}

// TestResizedVolume covers a source that grew or shrank since its parent:
// the parent's map must neither be indexed past its end nor have its short
// last block reused for a longer one.
func TestResizedVolume(t *testing.T) {
	const bs = 64 << 10
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		before, now int
	}{
		{"grew by blocks", 3*bs + 100, 6*bs + 5},
		{"last block grew", 3*bs + 100, 3*bs + 5000},
		{"shrank", 5 * bs, 2*bs + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := testRepository(t)
			data := randomData(3, c.now)
			first, err := r.Backup(ctx, newMemSource("v", data[:min(c.before, c.now)]), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, changed := range [][]Extent{nil, {{Off: 0, Len: 1}}} {
				cp, err := r.Backup(ctx, newMemSource("v", data), BackupOptions{Parent: first.ID, Changed: changed})
				if err != nil {
					t.Fatal(err)
				}
				if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
					t.Fatalf("changed=%v: restored bytes differ", changed)
				}
			}
		})
	}
}
