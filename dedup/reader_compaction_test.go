package dedup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"cairn/dedup/pack"
)

// compactionFixture is a repository where checkpoint A shares few blocks
// with B and C, so that forgetting B and then C and pruning with compaction
// moves every chunk of A to new packs, twice. The repository is closed: each
// test opens its own handles, as separate processes would.
type compactionFixture struct {
	dir        string
	a, b, c    *Checkpoint
	dataA      []byte
	packsB     int
	blocksEach int // blocks of A taken from each pack of B
}

// newCompactionFixture backs up B (four full packs, one worker so that
// block i lands in pack i/16), then A and C, which take blocks 16p+3 and
// 16p+9 (A) and 16p+5 and 16p+12 (C) of each pack p of B and store nothing
// new.
func newCompactionFixture(t *testing.T) compactionFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Init(ctx, dir, InitOptions{BlockSize: testBS, PackSize: 1 << 20}, nil, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const packs = 4
	dataB := randomData(91, packs*16*testBS)
	pick := func(offsets ...int) []byte {
		var out []byte
		for p := range packs {
			for _, o := range offsets {
				b := 16*p + o
				out = append(out, dataB[b*testBS:(b+1)*testBS]...)
			}
		}
		return out
	}
	f := compactionFixture{dir: dir, dataA: pick(3, 9), packsB: packs, blocksEach: 2}
	f.b = backup(t, r, dataB)
	f.a = backup(t, r, f.dataA)
	f.c = backup(t, r, pick(5, 12))
	if f.a.NewChunks != 0 || f.c.NewChunks != 0 {
		t.Fatalf("A and C stored %d and %d new chunks, want none", f.a.NewChunks, f.c.NewChunks)
	}
	if got := blockMap(t, r, f.b.ID).Packs; len(got) != packs {
		t.Fatalf("B is in %d packs, want %d", len(got), packs)
	}
	return f
}

// openReader opens the reading side's handle: no chunk cache, so every
// read goes to the packs through whatever headers and locations it cached.
func (f compactionFixture) openReader(t *testing.T, noIndex bool) *Repository {
	t.Helper()
	r, err := Open(context.Background(), f.dir, Options{NoSync: true, NoIndex: noIndex, CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openPruner opens the handle another process would prune through: with its
// own index when the reader holds the repository's (another host).
func (f compactionFixture) openPruner(t *testing.T, ownIndex bool) *Repository {
	t.Helper()
	o := Options{NoSync: true}
	if ownIndex {
		o.IndexDir = t.TempDir()
	}
	r, err := Open(context.Background(), f.dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// forgetAndCompact forgets id through r and prunes with no grace period,
// compacting packs whose live share is below compactBelow.
func forgetAndCompact(t *testing.T, r *Repository, id string, compactBelow float64) *PruneReport {
	t.Helper()
	if _, err := r.Forget(context.Background(), ForgetPolicy{IDs: []string{id}}); err != nil {
		t.Fatal(err)
	}
	return mustPrune(t, r, PruneOptions{Grace: -1, CompactBelow: compactBelow, TempDir: t.TempDir()})
}

// checkReads reads want back through rd in every way a client does: one
// whole read, reads that straddle blocks, small reads inside blocks, and a
// parallel restore.
func checkReads(t *testing.T, rd *Reader, want []byte, what string) {
	t.Helper()
	ctx := context.Background()
	bs := int64(rd.BlockSize())
	ranges := []struct{ off, n int64 }{
		{0, int64(len(want))},
		{bs - 100, 300},
		{3*bs + 17, 2*bs + 5},
		{int64(len(want)) - 4096, 4096},
		{5 * bs, 1},
	}
	for b := int64(0); b < int64(len(want))/bs; b++ {
		ranges = append(ranges, struct{ off, n int64 }{b*bs + 512, 1024})
	}
	for _, rg := range ranges {
		got := make([]byte, rg.n)
		if n, err := rd.ReadAtContext(ctx, got, rg.off); err != nil || n != len(got) {
			t.Fatalf("%s: read %d bytes at %d: %d, %v", what, rg.n, rg.off, n, err)
		}
		if !bytes.Equal(got, want[rg.off:rg.off+rg.n]) {
			t.Fatalf("%s: read %d bytes at %d: wrong bytes", what, rg.n, rg.off)
		}
	}
	tgt := &memTarget{b: make([]byte, len(want))}
	if _, err := rd.r.Restore(ctx, rd.Checkpoint().ID, tgt, RestoreOptions{InFlight: 4}); err != nil {
		t.Fatalf("%s: restore: %v", what, err)
	}
	if !bytes.Equal(tgt.b, want) {
		t.Fatalf("%s: restore wrote wrong bytes", what)
	}
}

// TestReaderSurvivesCompaction opens a reader on A, then, through a second
// handle as another process would, forgets B and prunes with compaction
// (A's chunks move to new packs and the old ones are deleted), then forgets
// C and compacts again (they move once more). Every read of A through the
// first reader, which cached the old pack and shard headers and chunk
// locations, stays byte-exact.
func TestReaderSurvivesCompaction(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noIndex bool // the reader opens without the index, as the CLI's readers do
	}{
		{"reader without index", true},
		{"reader with its own index, prune on another host", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCompactionFixture(t)
			reader := f.openReader(t, tc.noIndex)
			rd, err := reader.OpenCheckpoint(context.Background(), f.a.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkReads(t, rd, f.dataA, "before any prune")
			pruner := f.openPruner(t, !tc.noIndex)
			before := blockMap(t, pruner, f.a.ID).Packs

			// Round 1: B gone, each pack of B holds 4 live chunks of 16
			// (A's 2 and C's 2): 25 % live, under the 50 % asked for.
			rep := forgetAndCompact(t, pruner, f.b.ID, 0.5)
			if rep.PacksCompacted != f.packsB || rep.PacksDeleted != 0 {
				t.Fatalf("round 1: report %+v, want %d packs compacted", rep, f.packsB)
			}
			for _, p := range before {
				if n := pruner.shardCount(context.Background(), pack.Name(p)); n != 0 {
					t.Fatalf("round 1: pack %s that A used still has %d shards", p, n)
				}
			}
			checkReads(t, rd, f.dataA, "after compaction 1")
			moved := packsHolding(t, pruner, blockMap(t, pruner, f.a.ID).Chunks)

			// Round 2: C gone, the new packs hold only A's chunks and C's:
			// half live, under the 90 % asked for.
			rep = forgetAndCompact(t, pruner, f.c.ID, 0.9)
			if rep.PacksCompacted == 0 {
				t.Fatalf("round 2: report %+v, want the packs of round 1 compacted", rep)
			}
			for p := range moved {
				if n := pruner.shardCount(context.Background(), pack.Name(p)); n != 0 {
					t.Fatalf("round 2: pack %s that A's chunks moved to still has %d shards", p, n)
				}
			}
			checkReads(t, rd, f.dataA, "after compaction 2")
		})
	}
}

// packsHolding returns the packs the shard stores hold the chunks in, from
// their headers.
func packsHolding(t *testing.T, r *Repository, chunks []ChunkRef) map[PackID]bool {
	t.Helper()
	want := make(map[ChunkID]bool)
	for _, c := range chunks {
		want[c.ID] = true
	}
	out := make(map[PackID]bool)
	err := r.listPacks(context.Background(), func(p PackID) error {
		entries, err := r.packHeader(context.Background(), p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if want[e.ID] {
				out[p] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no pack holds A's chunks")
	}
	return out
}

// TestReaderDuringCompaction reads A from several goroutines while the
// other handle forgets B and compacts: no read fails or returns wrong
// bytes, whether it lands before, during or after the pack it cached is
// deleted.
func TestReaderDuringCompaction(t *testing.T) {
	f := newCompactionFixture(t)
	reader := f.openReader(t, true)
	rd, err := reader.OpenCheckpoint(context.Background(), f.a.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkReads(t, rd, f.dataA, "before the prune")
	pruner := f.openPruner(t, false)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			buf := make([]byte, 3*testBS)
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + rng.IntN(len(buf))
				off := rng.Int64N(int64(len(f.dataA) - n + 1))
				if _, err := rd.ReadAtContext(context.Background(), buf[:n], off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], f.dataA[off:off+int64(n)]) {
					errs <- fmt.Errorf("%d bytes at %d: wrong bytes", n, off)
					return
				}
			}
		})
	}
	rep := forgetAndCompact(t, pruner, f.b.ID, 0.5)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read during compaction: %v", err)
	}
	if rep.PacksCompacted != f.packsB {
		t.Fatalf("report %+v, want %d packs compacted", rep, f.packsB)
	}
	checkReads(t, rd, f.dataA, "after the prune")
}

// TestReaderChunkGone checks that a chunk that really is gone (its
// checkpoint forgotten and pruned) ends the retries with an error that
// names the chunk and the checkpoint, instead of looping or passing.
func TestReaderChunkGone(t *testing.T) {
	f := newCompactionFixture(t)
	reader := f.openReader(t, true)
	rd, err := reader.OpenCheckpoint(context.Background(), f.a.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkReads(t, rd, f.dataA, "before the prune")
	pruner := f.openPruner(t, false)
	for _, id := range []string{f.b.ID, f.c.ID} {
		if _, err := pruner.Forget(context.Background(), ForgetPolicy{IDs: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	forgetAndCompact(t, pruner, f.a.ID, 0.5)
	_, err = rd.ReadAtContext(context.Background(), make([]byte, 10), 0)
	if !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("read of a pruned chunk: %v, want ErrChunkNotFound", err)
	}
	ref, _ := rd.bm.Lookup(0)
	for _, want := range []string{f.a.ID, ref.ID.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
}

// TestPackScanRefresh checks how readers share rescans: those that found
// the same map stale wait for one scan instead of each running their own,
// a reader that saw an older map takes the newer one as it is, and a
// failed scan is not kept.
func TestPackScanRefresh(t *testing.T) {
	ctx := context.Background()
	var s packScan
	var mu sync.Mutex
	scans := 0
	fail := false
	scan := func(context.Context) (map[ChunkID]chunkLoc, error) {
		mu.Lock()
		defer mu.Unlock()
		scans++
		if fail {
			return nil, errors.New("store unreachable")
		}
		return map[ChunkID]chunkLoc{{byte(scans)}: {}}, nil
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, gen, err := s.refresh(ctx, 0, scan); err != nil || gen != 1 {
				t.Errorf("refresh after generation 0: generation %d, %v; want 1", gen, err)
			}
		})
	}
	wg.Wait()
	steps := []struct {
		name      string
		seen      uint64
		fail      bool
		wantScans int
		wantGen   uint64
		wantErr   bool
	}{
		{"eight readers that found no map share one scan", 0, false, 1, 1, false},
		{"a reader that saw an older map takes the current one", 0, false, 1, 1, false},
		{"a reader that found the current map stale scans", 1, false, 2, 2, false},
		{"a failed scan is an error", 2, true, 3, 2, true},
		{"and is not kept: the next reader scans again", 2, false, 4, 3, false},
	}
	for i, st := range steps {
		if i > 0 {
			mu.Lock()
			fail = st.fail
			mu.Unlock()
			m, gen, err := s.refresh(ctx, st.seen, scan)
			if (err != nil) != st.wantErr || gen != st.wantGen || (err == nil && m == nil) {
				t.Fatalf("%s: generation %d, map %v, %v", st.name, gen, m != nil, err)
			}
		}
		mu.Lock()
		n := scans
		mu.Unlock()
		if n != st.wantScans {
			t.Fatalf("%s: %d scans, want %d", st.name, n, st.wantScans)
		}
	}
	if m, gen := s.current(); gen != 3 || len(m) != 1 {
		t.Fatalf("current map: generation %d, %d entries", gen, len(m))
	}
}
