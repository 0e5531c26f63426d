package dedup

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zeebo/xxh3"

	"cairn/dedup/pack"
)

// TestVerifyClean checks a healthy repository with and without an index:
// everything is counted, nothing reported, and progress reaches the end.
func TestVerifyClean(t *testing.T) {
	ctx := context.Background()
	for _, g := range []struct{ k, m int }{{4, 2}, {3, 1}, {1, 0}} {
		r := openDamageRepo(t, g.k, g.m, nil)
		data := randomData(21, 3<<20)
		cp1, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		copy(data[1<<20:], randomData(22, 256<<10))
		cp2, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{Parent: cp1.ID})
		if err != nil {
			t.Fatal(err)
		}
		packs := len(objectNames(t, r, "packs/"))
		chunks := int(cp1.NewChunks + cp2.NewChunks)
		noIndex, err := Open(ctx, r.Dir(), Options{NoIndex: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { noIndex.Close() })
		for _, c := range []struct {
			name string
			r    *Repository
		}{{"index", r}, {"no index", noIndex}} {
			for _, deep := range []bool{false, true} {
				var calls []VerifyProgress
				rep, err := c.r.Verify(ctx, VerifyOptions{Deep: deep, Progress: func(p VerifyProgress) { calls = append(calls, p) }})
				if err != nil {
					t.Fatal(err)
				}
				if !rep.OK || rep.Packs != packs || rep.Chunks != chunks || rep.Manifests != 2 {
					t.Errorf("%d+%d %s deep=%v: %+v, want OK with %d packs, %d chunks, 2 manifests",
						g.k, g.m, c.name, deep, rep, packs, chunks)
				}
				if len(calls) != packs || calls[len(calls)-1] != (VerifyProgress{Packs: packs, PacksDone: packs}) {
					t.Errorf("%d+%d %s: progress %v", g.k, g.m, c.name, calls)
				}
			}
		}
	}
}

// TestVerifyMissingPack removes every shard of a pack, which the index still
// lists: its chunks must be reported missing, with and without the index.
func TestVerifyMissingPack(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 4, 2, nil)
	if _, err := r.Backup(ctx, newMemSource("vol", randomData(31, 3<<20)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	name := objectNames(t, r, "packs/")[1]
	p, _ := ParsePackID(filepath.Base(name))
	entries, err := r.packHeader(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.ID.String())
	}
	slices.Sort(want)
	if err := r.obj.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	noIndex, err := Open(ctx, r.Dir(), Options{NoIndex: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer noIndex.Close()
	for _, rr := range []*Repository{r, noIndex} {
		rep, err := rr.Verify(ctx, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || !slices.Equal(rep.MissingChunks, want) || len(rep.DamagedShards) != 0 {
			t.Errorf("verify %+v, want %d missing chunks", rep, len(want))
		}
	}
}

// TestVerifyIncompleteManifest leaves a manifest with k-1 shard files: not a
// checkpoint any more, but damage all the same.
func TestVerifyIncompleteManifest(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 4, 2, nil)
	if _, err := r.Backup(ctx, newMemSource("vol", randomData(41, 1<<20)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	name := objectNames(t, r, "manifests/")[0]
	for i := 3; i < 6; i++ {
		if err := os.Remove(shardPath(r, i, name)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Manifests != 0 || len(rep.DamagedShards) != 3 || !slices.Equal(rep.Unrecoverable, []string{name}) {
		t.Fatalf("verify %+v", rep)
	}
	fixed, err := r.Repair(ctx)
	if err != nil || len(fixed.Rewritten) != 0 || !slices.Equal(fixed.Unrecoverable, []string{name}) {
		t.Fatalf("repair %+v, %v", fixed, err)
	}
}

// TestDeepVerifyBadChunk rewrites a pack so that its shards are consistent
// but one chunk is not what its entry says: only a deep verify sees it.
func TestDeepVerifyBadChunk(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		k, m     int
		password []byte
		fixSum   bool // also fix the entry's xxh3, so decrypt or rehash must catch it
	}{
		{"stored checksum", 4, 2, nil, false},
		{"rehash", 4, 2, nil, true},
		{"rehash 1+0", 1, 0, nil, true},
		{"authentication", 3, 1, []byte("pw"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := openDamageRepo(t, c.k, c.m, c.password)
			data := randomData(51, 2<<20)
			cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			name := objectNames(t, r, "packs/")[0]
			p, _ := ParsePackID(filepath.Base(name))
			entries, err := r.packHeader(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := r.obj.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			e := &entries[len(entries)/2]
			blob := obj[e.Offset : e.Offset+uint64(e.StoredLen)]
			blob[len(blob)/2] ^= 1
			if c.fixSum {
				e.Sum = xxh3.Hash(blob)
			}
			hl, err := pack.DecodeTrailer(obj[len(obj)-pack.TrailerSize:], int64(len(obj)))
			if err != nil {
				t.Fatal(err)
			}
			blobsEnd := int64(len(obj)) - pack.TrailerSize - hl
			hdr := r.seal.seal(nil, pack.EncodeHeader(entries), packHeaderAD(p))
			obj = append(append(obj[:blobsEnd], hdr...), pack.EncodeTrailer(len(hdr))...)
			if _, err := r.obj.Put(ctx, name, obj); err != nil {
				t.Fatal(err)
			}
			dropHeaderCaches(r)
			if rep, err := r.Verify(ctx, VerifyOptions{}); err != nil || !rep.OK {
				t.Fatalf("shallow verify: %+v, %v", rep, err)
			}
			rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || !slices.Equal(rep.BadChunks, []string{e.ID.String()}) {
				t.Fatalf("deep verify %+v, want chunk %s bad", rep, e.ID)
			}
			_, err = r.Restore(ctx, cp.ID, &memTarget{b: make([]byte, len(data))}, RestoreOptions{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestVerifyCanceled checks that cancellation is an error, not damage.
func TestVerifyCanceled(t *testing.T) {
	r := openDamageRepo(t, 4, 2, nil)
	if _, err := r.Backup(context.Background(), newMemSource("vol", randomData(61, 1<<20)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Verify(ctx, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("verify: %v, want context.Canceled", err)
	}
	if _, err := r.Repair(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("repair: %v, want context.Canceled", err)
	}
}

// filesContaining lists the files under dir that contain any of needles.
func filesContaining(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				hits = append(hits, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestRepairLostStore empties one shard store, as a replaced disk would be:
// Repair must bring back every shard and the config replica byte for byte.
func TestRepairLostStore(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 4, 2, nil)
	data := randomData(101, 2<<20)
	cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects := objectNames(t, r, "packs/", "manifests/")
	clean := snapshotShards(t, r)
	lost := filepath.Join(r.Dir(), "shards", "1")
	entries, err := os.ReadDir(lost)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(lost, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.DamagedShards) != len(objects)+1 || len(rep.Unrecoverable) != 0 {
		t.Fatalf("verify %+v, want %d missing shards and the config", rep, len(objects)+1)
	}
	for _, d := range rep.DamagedShards {
		if d.Shard != 1 || d.Problem != "missing" {
			t.Errorf("unexpected damage %+v", d)
		}
	}
	fixed, err := r.Repair(ctx)
	if err != nil || len(fixed.Rewritten) != len(objects)+1 || len(fixed.Unrecoverable) != 0 {
		t.Fatalf("repair %+v, %v", fixed, err)
	}
	sameFiles(t, clean, snapshotShards(t, r))
	if rep, err := r.Verify(ctx, VerifyOptions{Deep: true}); err != nil || !rep.OK {
		t.Fatalf("verify after repair: %+v, %v", rep, err)
	}
	if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("restore after repair differs")
	}
}
