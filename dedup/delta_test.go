package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zeebo/xxh3"

	"cairn/internal/lru"
)

// scatter rewrites n random 4 KiB pages of a copy of data.
func scatter(data []byte, seed uint64, n int) []byte {
	out := bytes.Clone(data)
	rng := rand.New(rand.NewPCG(seed, 7))
	for range n {
		pg := rng.IntN(len(out) / pageSize)
		copy(out[pg*pageSize:], randomData(rng.Uint64(), pageSize))
	}
	return out
}

func countDeltas(t *testing.T, r *Repository) int {
	t.Helper()
	n := 0
	for fl, c := range storedFlags(t, r) {
		if fl&blobDelta != 0 {
			n += c
		}
	}
	return n
}

// TestDeltaScatteredWrites is issue 13's case: 1% of an image of random data
// rewritten in scattered 4 KiB writes. The incremental stores the changed
// pages, not every touched block, and restores and reads back exactly.
func TestDeltaScatteredWrites(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[enc], func(t *testing.T) {
			ctx := context.Background()
			o := InitOptions{BlockSize: 1 << 20, PackSize: 8 << 20}
			if enc {
				o.Password = []byte("delta")
			}
			r := testRepository(t, o)
			v1 := randomData(1, 32<<20)
			cp1, err := r.Backup(ctx, newMemSource("vol", v1), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			v2 := scatter(v1, 2, len(v1)/pageSize/100)
			changed := int64(0)
			for i := 0; i < len(v1); i += pageSize {
				if !bytes.Equal(v1[i:i+pageSize], v2[i:i+pageSize]) {
					changed += pageSize
				}
			}
			cp2, err := r.Backup(ctx, newMemSource("vol", v2), BackupOptions{Parent: cp1.ID})
			if err != nil {
				t.Fatal(err)
			}
			if countDeltas(t, r) == 0 {
				t.Fatal("no delta chunk stored")
			}
			if cp2.NewBytes != changed {
				t.Errorf("new bytes %d, want the %d changed", cp2.NewBytes, changed)
			}
			// Parity at 4+2 is 1.5x; the rest is headers and page hashes.
			if cp2.StoredBytes > 3*changed {
				t.Errorf("the incremental stored %d bytes for %d changed (%.1fx, goal at most 3x)",
					cp2.StoredBytes, changed, float64(cp2.StoredBytes)/float64(changed))
			}
			t.Logf("changed %d, stored %d (%.2fx), full backup stored %d", changed, cp2.StoredBytes,
				float64(cp2.StoredBytes)/float64(changed), cp1.StoredBytes)
			for _, c := range []struct {
				cp   *Checkpoint
				want []byte
			}{{cp1, v1}, {cp2, v2}} {
				if got := restoreBytes(t, r, c.cp.ID, c.cp.Size); !bytes.Equal(got, c.want) {
					t.Fatalf("checkpoint %s restores differently", c.cp.ID)
				}
				checkRandomReads(t, r, c.cp.ID, c.want, 5, 200)
			}
			rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
			if err != nil || !rep.OK {
				t.Fatalf("verify --deep: %+v, %v", rep, err)
			}
		})
	}
}

// TestDeltaOutgrown stores a block whole again once more than half of it
// would live in delta pages.
func TestDeltaOutgrown(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t, InitOptions{BlockSize: 256 << 10, PackSize: 4 << 20})
	v := randomData(1, 256<<10)
	cp, err := r.Backup(ctx, newMemSource("vol", v), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pages := len(v) / pageSize
	// Each round rewrites a fresh fifth of the block: the first two are
	// deltas, the third would put 3/5 of the block in deltas.
	wantDeltas := []int{1, 2, 2}
	for i, want := range wantDeltas {
		for p := i * pages / 5; p < (i+1)*pages/5; p++ {
			copy(v[p*pageSize:], randomData(uint64(100+p+i), pageSize))
		}
		if cp, err = r.Backup(ctx, newMemSource("vol", v), BackupOptions{Parent: cp.ID}); err != nil {
			t.Fatal(err)
		}
		if got := countDeltas(t, r); got != want {
			t.Fatalf("round %d: %d delta chunks, want %d", i, got, want)
		}
		if got := restoreBytes(t, r, cp.ID, cp.Size); !bytes.Equal(got, v) {
			t.Fatalf("round %d restores differently", i)
		}
	}
}

// TestDeltaChainPrune: 30 incrementals with scattered writes (and a block
// now and then rewritten whole or zeroed), then checkpoints deleted in
// random order with a prune after each; every remaining checkpoint
// restores exactly, and no delta ever refers to a page its reference does
// not store itself.
func TestDeltaChainPrune(t *testing.T) {
	ctx := context.Background()
	const bs = 128 << 10
	r := testRepository(t, InitOptions{BlockSize: bs, PackSize: 1 << 20})
	rng := rand.New(rand.NewPCG(3, 3))
	v := randomData(1, 16*bs)
	type version struct {
		id   string
		data []byte
	}
	var versions []version
	parent := ""
	for i := range 31 {
		if i > 0 {
			v = scatter(v, uint64(i), 6)
			switch rng.IntN(4) {
			case 0:
				b := rng.IntN(16)
				copy(v[b*bs:(b+1)*bs], randomData(uint64(1000+i), bs))
			case 1:
				b := rng.IntN(16)
				clear(v[b*bs : (b+1)*bs])
			}
		}
		cp, err := r.Backup(ctx, newMemSource("vol", v), BackupOptions{Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, version{cp.ID, bytes.Clone(v)})
		parent = cp.ID
	}
	if n := countDeltas(t, r); n < 30 {
		t.Fatalf("%d delta chunks after 30 incrementals of scattered writes", n)
	}
	checkOneHop(t, r)
	rng.Shuffle(len(versions), func(i, j int) { versions[i], versions[j] = versions[j], versions[i] })
	for len(versions) > 0 {
		gone := versions[0]
		versions = versions[1:]
		if err := r.DeleteCheckpoint(ctx, gone.id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Prune(ctx, PruneOptions{Grace: -1}); err != nil {
			t.Fatalf("prune after deleting %s: %v", gone.id, err)
		}
		// Fresh caches: every read goes to the packs that are left.
		r.chunks = newSharedCache[ChunkID](64 << 20)
		r.frames = newSharedCache[frameKey](8 << 20)
		r.deltaHeaders = lru.New[ChunkID, *deltaHeader](1024)
		dropHeaderCaches(r)
		for _, ver := range versions {
			if got := restoreBytes(t, r, ver.id, int64(len(ver.data))); !bytes.Equal(got, ver.data) {
				t.Fatalf("after deleting %s, checkpoint %s restores differently", gone.id, ver.id)
			}
		}
		if len(versions)%10 == 0 {
			rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
			if err != nil || !rep.OK {
				t.Fatalf("verify --deep with %d checkpoints left: %+v, %v", len(versions), rep, err)
			}
		}
	}
	if left := objectNames(t, r, "packs/"); len(left) != 0 {
		t.Errorf("%d packs left after every checkpoint was deleted and pruned", len(left))
	}
}

// checkOneHop checks every delta's references: each page a delta takes
// from another chunk is one that chunk stores itself.
func checkOneHop(t *testing.T, r *Repository) {
	t.Helper()
	ctx := context.Background()
	err := r.listPacks(ctx, func(p PackID) error {
		entries, err := r.packHeader(ctx, p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Flags&blobDelta == 0 {
				continue
			}
			h, err := r.deltaHeaderOf(ctx, chunkLoc{Pack: p, Entry: e})
			if err != nil {
				return err
			}
			for i, s := range h.src {
				if s == 0 {
					continue
				}
				ref := h.refs[s-1]
				loc, ok, err := r.idx.Lookup(ref.id)
				if err != nil || !ok {
					t.Fatalf("delta %s refers to chunk %s, not indexed: %v", e.ID, ref.id, err)
				}
				if loc.Flags&blobDelta != 0 {
					rh, err := r.deltaHeaderOf(ctx, loc)
					if err != nil {
						return err
					}
					if rh.src[i] != 0 {
						t.Fatalf("delta %s page %d: two hops (through %s)", e.ID, i, ref.id)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeltaDamage: verify --deep names a delta whose reference is damaged,
// repair rebuilds the shard, and the block restores again.
func TestDeltaDamage(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t, InitOptions{BlockSize: 256 << 10, PackSize: 1 << 20})
	v1 := randomData(1, 4<<20)
	cp1, err := r.Backup(ctx, newMemSource("vol", v1), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	firstPacks := objectNames(t, r, "packs/")
	v2 := scatter(v1, 9, 40)
	cp2, err := r.Backup(ctx, newMemSource("vol", v2), BackupOptions{Parent: cp1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if countDeltas(t, r) == 0 {
		t.Fatal("no delta chunk stored")
	}
	// Damage every data shard of the full backup's packs beyond what
	// parity covers: deltas over them can no longer be read.
	saved := snapshotShards(t, r)
	for _, name := range firstPacks {
		for i := range 3 {
			p := shardPath(r, i, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	dropHeaderCaches(r)
	r.chunks = newSharedCache[ChunkID](64 << 20)
	r.frames = newSharedCache[frameKey](8 << 20)
	rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("verify --deep passed over deltas whose references are damaged")
	}
	if _, err := r.Restore(ctx, cp2.ID, discardWriterAt{}, RestoreOptions{}); err == nil {
		t.Fatal("a restore over damaged references succeeded")
	}
	// Within what parity covers (one shard per pack), repair heals it.
	for p, b := range saved {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range firstPacks {
		if err := os.Remove(shardPath(r, 1, name)); err != nil {
			t.Fatal(err)
		}
	}
	dropHeaderCaches(r)
	if _, err := r.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range firstPacks {
		if _, err := os.Stat(shardPath(r, 1, name)); err != nil {
			t.Fatalf("repair did not rebuild %s: %v", name, err)
		}
	}
	rep, err = r.Verify(ctx, VerifyOptions{Deep: true})
	if err != nil || !rep.OK {
		t.Fatalf("verify --deep after repair: %+v, %v", rep, err)
	}
	if got := restoreBytes(t, r, cp2.ID, cp2.Size); !bytes.Equal(got, v2) {
		t.Fatal("the delta checkpoint restores differently after repair")
	}
}

// fixSum rewrites the checksum that ends a delta header.
func fixSum(b []byte) {
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxh3.Hash(b[:len(b)-8]))
}

type discardWriterAt struct{}

func (discardWriterAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestDeltaRebuiltIndex: with the index rebuilt from the packs, deltas
// and their references are found again.
func TestDeltaRebuiltIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Init(ctx, dir, InitOptions{BlockSize: 256 << 10, PackSize: 1 << 20}, nil, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	v1 := randomData(4, 2<<20)
	cp1, err := r.Backup(ctx, newMemSource("vol", v1), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v2 := scatter(v1, 5, 20)
	cp2, err := r.Backup(ctx, newMemSource("vol", v2), BackupOptions{Parent: cp1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	r, err = Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := restoreBytes(t, r, cp2.ID, cp2.Size); !bytes.Equal(got, v2) {
		t.Fatal("restore after an index rebuild differs")
	}
	v3 := scatter(v2, 6, 20)
	cp3, err := r.Backup(ctx, newMemSource("vol", v3), BackupOptions{Parent: cp2.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := restoreBytes(t, r, cp3.ID, cp3.Size); !bytes.Equal(got, v3) {
		t.Fatal("a delta over a delta restores differently after an index rebuild")
	}
}

// TestDeltaHeaderRefused: malformed headers are refused, never followed.
func TestDeltaHeaderRefused(t *testing.T) {
	r := testRepository(t)
	data := randomData(1, 64<<10)
	id := r.hash.id(data)
	ps := pageSources{refs: []deltaRef{{id: ChunkID{1}}}, src: slices.Repeat([]uint8{1}, 16)}
	ps.hashes = r.hash.appendPageHashes(nil, randomData(2, 64<<10))
	if _, _, _, _, ok := r.encodeDelta(id, data, r.hash.appendPageHashes(nil, data), ps, &deltaScratch{}); ok {
		t.Fatal("a delta with every page changed was not refused")
	}
	ps.hashes = r.hash.appendPageHashes(nil, data)
	copy(ps.hashes, make([]byte, pageHashSize)) // page 0 changed
	stored, flags, _, _, ok := r.encodeDelta(id, data, r.hash.appendPageHashes(nil, data), ps, &deltaScratch{})
	if !ok {
		t.Fatal("a delta of one changed page was refused")
	}
	e := packEntry{ID: id, RawLen: uint32(len(data)), Flags: flags, StoredLen: uint32(len(stored))}
	plain := func(mut func([]byte)) []byte {
		// The test repository is unencrypted: the header is in the clear.
		b := bytes.Clone(stored[4 : 4+binary.LittleEndian.Uint32(stored)])
		mut(b)
		return b
	}
	if _, err := decodeDeltaHeader(e, plain(func([]byte) {}), 0); err != nil {
		t.Fatalf("the header as written: %v", err)
	}
	for name, mut := range map[string]func([]byte){
		"version":    func(b []byte) { b[0] = 9 },
		"checksum":   func(b []byte) { b[len(b)-1] ^= 1 },
		"truncated":  func(b []byte) { copy(b, b[1:]) },
		"self":       func(b []byte) { copy(b[8:], id[:]) },
		"no own":     func(b []byte) { b[8+deltaRefSize] = 1 },
		"bad source": func(b []byte) { b[8+deltaRefSize+3] = 7 },
	} {
		b := plain(mut)
		if name != "version" && name != "checksum" && name != "truncated" {
			// Re-seal the checksum so the check under test is the one reached.
			b = append(b[:len(b)-8:len(b)-8], make([]byte, 8)...)
			fixSum(b)
		}
		if _, err := decodeDeltaHeader(e, b, 0); err == nil {
			t.Errorf("%s: header accepted", name)
		} else if name != "version" && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestDeltaRewriteWhole: with the full checkpoint deleted, the chunks its
// blocks were stored in live on only for one delta each; prune rewrites
// those deltas whole and frees the old packs.
func TestDeltaRewriteWhole(t *testing.T) {
	ctx := context.Background()
	const bs = 128 << 10
	dir := t.TempDir()
	r, err := Init(ctx, dir, InitOptions{BlockSize: bs, PackSize: 1 << 20}, nil, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.Close() }()
	v1 := randomData(1, 4*bs)
	cp1, err := r.Backup(ctx, newMemSource("vol", v1), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	firstPacks := objectNames(t, r, "packs/")
	v2 := bytes.Clone(v1)
	for b := range 4 {
		copy(v2[b*bs:], randomData(uint64(10+b), bs/2)) // half of each block
	}
	cp2, err := r.Backup(ctx, newMemSource("vol", v2), BackupOptions{Parent: cp1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if n := countDeltas(t, r); n != 4 {
		t.Fatalf("%d delta chunks, want 4", n)
	}
	// While the full checkpoint lives, its chunks are referenced directly:
	// nothing to rewrite.
	rep, err := r.Prune(ctx, PruneOptions{Grace: -1})
	if err != nil || rep.DeltasRewritten != 0 {
		t.Fatalf("prune with both checkpoints: %+v, %v", rep, err)
	}
	if err := r.DeleteCheckpoint(ctx, cp1.ID); err != nil {
		t.Fatal(err)
	}
	dry, err := r.Prune(ctx, PruneOptions{Grace: -1, DryRun: true})
	if err != nil || dry.DeltasRewritten != 4 {
		t.Fatalf("dry run: %+v, %v; want 4 deltas to rewrite", dry, err)
	}
	if countDeltas(t, r) != 4 {
		t.Fatal("a dry run rewrote deltas")
	}
	rep, err = r.Prune(ctx, PruneOptions{Grace: -1})
	if err != nil || rep.DeltasRewritten != 4 {
		t.Fatalf("prune: %+v, %v; want 4 deltas rewritten", rep, err)
	}
	for _, name := range objectNames(t, r, "packs/") {
		if slices.Contains(firstPacks, name) {
			t.Errorf("pack %s of the deleted full checkpoint is still there", name)
		}
	}
	if n := countDeltas(t, r); n != 0 {
		t.Errorf("%d delta copies left after the prune", n)
	}
	check := func(when string) {
		t.Helper()
		if got := restoreBytes(t, r, cp2.ID, cp2.Size); !bytes.Equal(got, v2) {
			t.Fatalf("%s: the remaining checkpoint restores differently", when)
		}
		checkRandomReads(t, r, cp2.ID, v2, 8, 50)
		vr, err := r.Verify(ctx, VerifyOptions{Deep: true})
		if err != nil || !vr.OK {
			t.Fatalf("%s: verify --deep: %+v, %v", when, vr, err)
		}
	}
	check("after the prune")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(ctx, dir, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	check("after an index rebuild")
}
