package dedup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"cairn/dedup/pack"
)

const testBS = 64 << 10

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clockRepository is TestRepository with an injected clock (nil: real time).
func clockRepository(t *testing.T, clock *testClock) *Repository {
	t.Helper()
	opts := Options{NoSync: true}
	if clock != nil {
		opts.Now = clock.Now
	}
	r, err := Init(context.Background(), t.TempDir(), InitOptions{BlockSize: testBS, PackSize: 1 << 20}, nil, opts)
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// restoreFresh restores through a second handle on the repository, opened
// without the index and with empty caches: the bytes must really be in the
// shard stores.
func restoreFresh(t *testing.T, r *Repository, id string, want []byte) {
	t.Helper()
	ro, err := Open(context.Background(), r.Dir(), Options{NoIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := restoreBytes(t, ro, id, int64(len(want))); !bytes.Equal(got, want) {
		t.Fatalf("checkpoint %s restores wrong bytes", id)
	}
}

func backup(t *testing.T, r *Repository, data []byte) *Checkpoint {
	t.Helper()
	// One worker packs blocks in order, so which chunks share a pack is
	// known: 16 incompressible 64 KiB blocks fill one 1 MiB pack.
	cp, err := r.Backup(context.Background(), newMemSource("vol", data), BackupOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func blockMap(t *testing.T, r *Repository, id string) *BlockMap {
	t.Helper()
	_, bm, err := r.LoadCheckpoint(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return bm
}

func mustPrune(t *testing.T, r *Repository, o PruneOptions) *PruneReport {
	t.Helper()
	rep, err := r.Prune(context.Background(), o)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return rep
}

func storedBytes(t *testing.T, r *Repository) int64 {
	t.Helper()
	st, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.StoredBytes
}

func TestPruneAfterForget(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	r := clockRepository(t, clock)
	shared := randomData(1, 16*testBS)
	dataA := append(slices.Clone(shared), randomData(2, 16*testBS)...)
	dataB := append(slices.Clone(shared), randomData(3, 16*testBS)...)
	a, b := backup(t, r, dataA), backup(t, r, dataB)
	packsA, packsB := blockMap(t, r, a.ID).Packs, blockMap(t, r, b.ID).Packs
	var onlyA []PackID
	for _, p := range packsA {
		if !slices.Contains(packsB, p) {
			onlyA = append(onlyA, p)
		}
	}
	if len(packsA) != 2 || len(onlyA) != 1 {
		t.Fatalf("packs of A %v, of B %v: want two, one shared", packsA, packsB)
	}
	if _, err := r.Forget(ctx, ForgetPolicy{IDs: []string{a.ID}}); err != nil {
		t.Fatal(err)
	}
	before := storedBytes(t, r)

	steps := []struct {
		name    string
		advance time.Duration
		o       PruneOptions
		want    PruneReport
		gone    bool
	}{
		{"young packs are kept", 0, PruneOptions{}, PruneReport{PacksTotal: 3, PacksKeptGrace: 1, ChunksLive: 32, ChunksDead: 16}, false},
		{"dry run deletes nothing", 2 * time.Hour, PruneOptions{DryRun: true}, PruneReport{PacksTotal: 3, PacksDeleted: 1, ChunksLive: 32, ChunksDead: 16}, false},
		{"past grace", 0, PruneOptions{}, PruneReport{PacksTotal: 3, PacksDeleted: 1, ChunksLive: 32, ChunksDead: 16}, true},
		{"nothing left to do", 0, PruneOptions{}, PruneReport{PacksTotal: 2, ChunksLive: 32}, true},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		s.o.TempDir = t.TempDir()
		rep := mustPrune(t, r, s.o)
		got := *rep
		got.BytesFreed = 0
		if got != s.want {
			t.Fatalf("%s: report %+v, want %+v", s.name, got, s.want)
		}
		if (s.want.PacksDeleted > 0) != (rep.BytesFreed > 0) {
			t.Fatalf("%s: %d bytes freed for %d packs", s.name, rep.BytesFreed, rep.PacksDeleted)
		}
		if n := r.shardCount(ctx, pack.Name(onlyA[0])); (n == 0) != s.gone {
			t.Fatalf("%s: pack only A used has %d shards", s.name, n)
		}
		for _, p := range packsB {
			if n := r.shardCount(ctx, pack.Name(p)); n != 6 {
				t.Fatalf("%s: pack %s of B has %d shards", s.name, p, n)
			}
		}
	}
	if after := storedBytes(t, r); after >= before {
		t.Fatalf("stored bytes %d, before prune %d", after, before)
	}
	if got := restoreBytes(t, r, b.ID, b.Size); !bytes.Equal(got, dataB) {
		t.Fatal("B restores wrong bytes")
	}
	restoreFresh(t, r, b.ID, dataB)
	for i, s := range r.stores {
		if _, err := s.Stat(ctx, pruneMarkerName); err != nil {
			t.Fatalf("shard store %d has no prune marker: %v", i, err)
		}
	}
}

func TestPruneCompactsOnlyNearlyEmptyPacks(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	r := clockRepository(t, clock)
	// A fills two packs. B shares 2 of the 16 blocks of the first (12.5%
	// live: compact) and 10 of the second (62.5%: leave alone).
	dataA := randomData(10, 32*testBS)
	dataB := slices.Concat(dataA[3*testBS:5*testBS], dataA[20*testBS:30*testBS], randomData(11, 4*testBS))
	a, b := backup(t, r, dataA), backup(t, r, dataB)
	packsA := blockMap(t, r, a.ID).Packs
	if err := r.DeleteCheckpoint(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	rep := mustPrune(t, r, PruneOptions{TempDir: t.TempDir()})
	if rep.PacksCompacted != 1 || rep.PacksDeleted != 0 || rep.ChunksDead != 20 || rep.BytesFreed <= 0 {
		t.Fatalf("report %+v: want one pack compacted", rep)
	}
	if r.shardCount(ctx, pack.Name(packsA[0])) != 0 || r.shardCount(ctx, pack.Name(packsA[1])) != 6 {
		t.Fatal("the nearly empty pack should be gone and the mostly live one untouched")
	}
	if got := restoreBytes(t, r, b.ID, b.Size); !bytes.Equal(got, dataB) {
		t.Fatal("B restores wrong bytes")
	}
	restoreFresh(t, r, b.ID, dataB)
	// The copies are indexed: a new backup of the same data stores nothing.
	if c := backup(t, r, dataB); c.NewChunks != 0 {
		t.Fatalf("backup after compaction stored %d new chunks", c.NewChunks)
	}
}

func TestPruneOrphans(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	r := clockRepository(t, clock)
	dataA := randomData(20, 20*testBS)
	a := backup(t, r, dataA)

	// A backup killed after writing a pack, before its manifest.
	s := r.startSession()
	pk := newPacker(ctx, r, s, 1)
	for i := range 5 {
		raw := randomData(uint64(30+i), testBS)
		id := r.hash.id(raw)
		stored, flags := r.encodeBlob(id, raw, &blobScratch{}, nil)
		if _, err := pk.add(id, stored, len(raw), flags); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pk.finish(); err != nil {
		t.Fatal(err)
	}
	r.endSession(s)
	// A pack killed mid-write: k-1 shards, never indexed.
	half := pack.NewID()
	if _, err := r.obj.Put(ctx, pack.Name(half), randomData(40, 300<<10)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := r.stores[i].Delete(ctx, pack.Name(half)); err != nil {
			t.Fatal(err)
		}
	}
	// A commit killed midway: k-1 shards of a manifest.
	c := backup(t, r, randomData(50, 8*testBS))
	for i := range 3 {
		if err := r.stores[i].Delete(ctx, manifestName(c.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if cps, _ := r.Checkpoints(ctx); len(cps) != 1 {
		t.Fatalf("%d checkpoints, want only A", len(cps))
	}

	rep := mustPrune(t, r, PruneOptions{TempDir: t.TempDir()})
	if rep.PacksDeleted != 0 || rep.ManifestsIncompleteRemoved != 0 || rep.PacksKeptGrace != 3 {
		t.Fatalf("within grace: %+v", rep)
	}
	clock.Advance(time.Hour + time.Second)
	rep = mustPrune(t, r, PruneOptions{TempDir: t.TempDir()})
	if rep.PacksDeleted != 3 || rep.ManifestsIncompleteRemoved != 1 {
		t.Fatalf("past grace: %+v, want 3 packs and 1 manifest removed", rep)
	}
	if r.shardCount(ctx, pack.Name(half)) != 0 || r.shardCount(ctx, manifestName(c.ID)) != 0 {
		t.Fatal("orphans left behind")
	}
	restoreFresh(t, r, a.ID, dataA)
	if st, err := r.Stats(ctx); err != nil || st.Packs != 2 || st.Checkpoints != 1 {
		t.Fatalf("stats after prune %+v, %v: want A's 2 packs", st, err)
	}
}

func TestPruneMarkSetIsTemporary(t *testing.T) {
	r := clockRepository(t, nil)
	backup(t, r, randomData(60, 40*testBS))
	// The mark set goes where TempDir says: a missing directory fails.
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := r.Prune(context.Background(), PruneOptions{TempDir: missing}); err == nil {
		t.Fatal("prune with a missing TempDir succeeded")
	}
	tmp := t.TempDir()
	mustPrune(t, r, PruneOptions{TempDir: tmp})
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("mark set left behind in %s: %v", tmp, left)
	}
}

func TestCheckpointIDTime(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 30, 15, 123456789, time.UTC)
	got, ok := checkpointIDTime(newCheckpointID(at))
	if !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("got %v %v, want %v", got, ok, at.Truncate(time.Millisecond))
	}
	if _, ok := checkpointIDTime("not-a-uuid"); ok {
		t.Fatal("parsed a non-UUID")
	}
}
