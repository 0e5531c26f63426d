package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"

	"cairn/dedup/erasure"
	"cairn/dedup/index"
)

// swapRepo backs up two volumes into a 4+2 repository with 1 MiB packs and
// returns the repository, the checkpoints and a pack only each one uses.
func swapRepo(t *testing.T) (r *Repository, dataA, dataB []byte, cpA, cpB *Checkpoint, packA, packB string) {
	t.Helper()
	ctx := context.Background()
	r = openDamageRepo(t, 4, 2, nil)
	dataA, dataB = randomData(31, 1<<20), randomData(32, 1<<20)
	var err error
	if cpA, err = r.Backup(ctx, newMemSource("a", dataA), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	before := objectNames(t, r, "packs/")
	if cpB, err = r.Backup(ctx, newMemSource("b", dataB), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, n := range objectNames(t, r, "packs/") {
		if !slices.Contains(before, n) {
			added = append(added, n)
		}
	}
	if len(before) == 0 || len(added) == 0 {
		t.Fatalf("want packs from each backup, have %v then %v", before, added)
	}
	return r, dataA, dataB, cpA, cpB, before[0], added[0]
}

// copyShard copies shard i of object from over the same shard of object to,
// as an operator mixing up files would; asV1 rewrites it as a version-1
// shard first, which carries no object tag.
func copyShard(t *testing.T, r *Repository, i int, from, to string, asV1 bool) {
	t.Helper()
	b, err := os.ReadFile(shardPath(r, i, from))
	if err != nil {
		t.Fatal(err)
	}
	if asV1 {
		h, err := erasure.ParseShardPrefix(b)
		if err != nil {
			t.Fatal(err)
		}
		b[4] = 1
		binary.LittleEndian.PutUint32(b[28:], 0)
		// The header checksum (docs/format.md §8.1): xxh3 of the first
		// 32 bytes followed by the checksum table.
		sum := xxh3.New()
		_, _ = sum.Write(b[:32])
		_, _ = sum.Write(b[40:h.DataOffset()])
		binary.LittleEndian.PutUint64(b[32:], sum.Sum64())
	}
	if err := os.WriteFile(shardPath(r, i, to), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSwappedShards copies another pack's shards over a pack's: no command
// may call the repository OK while the checkpoint using the pack cannot be
// restored, and repair never rebuilds a pack from another pack's shards.
func TestSwappedShards(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		shards     []int
		asV1       bool
		repairable bool
	}{
		{"all shards", []int{0, 1, 2, 3, 4, 5}, false, false},
		{"k+m-1 shards", []int{0, 1, 2, 3, 5}, false, false},
		{"m shards", []int{1, 4}, false, true},
		{"one data shard", []int{2}, false, true},
		// A version-1 shard cannot prove what it belongs to: the pack
		// header and the chunk checks still must catch the swap.
		{"all shards, version 1", []int{0, 1, 2, 3, 4, 5}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, dataA, dataB, cpA, cpB, packA, packB := swapRepo(t)
			clean := snapshotShards(t, r)
			for _, i := range c.shards {
				copyShard(t, r, i, packB, packA, c.asV1)
			}
			dropHeaderCaches(r)
			r.chunks = newSharedCache[ChunkID](1)
			for _, deep := range []bool{false, true} {
				rep, err := r.Verify(ctx, VerifyOptions{Deep: deep})
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK {
					t.Fatalf("verify deep=%v says OK after %s of %s were replaced by %s's: %+v", deep, c.name, packA, packB, rep)
				}
				if !c.repairable && len(rep.MissingChunks)+len(rep.Unrecoverable)+len(rep.BadChunks) == 0 {
					t.Errorf("verify deep=%v reports %+v, want the pack or its chunks named", deep, rep)
				}
			}
			after := snapshotShards(t, r)
			fixed, err := r.Repair(ctx)
			if err != nil {
				t.Fatal(err)
			}
			dropHeaderCaches(r)
			if c.repairable {
				if len(fixed.Rewritten) != len(c.shards) || len(fixed.Unrecoverable) != 0 {
					t.Fatalf("repair %+v, want %d shards of %s rewritten", fixed, len(c.shards), packA)
				}
				sameFiles(t, clean, snapshotShards(t, r))
				if rep, err := r.Verify(ctx, VerifyOptions{Deep: true}); err != nil || !rep.OK {
					t.Fatalf("verify after repair: %+v, %v", rep, err)
				}
				if got := restoreBytes(t, r, cpA.ID, int64(len(dataA))); !bytes.Equal(got, dataA) {
					t.Fatal("restore after repair differs")
				}
			} else {
				for _, d := range fixed.Rewritten {
					if d.Object == packA {
						t.Fatalf("repair rewrote shard %d of %s from another pack's shards: %+v", d.Shard, packA, fixed)
					}
				}
				sameFiles(t, after, snapshotShards(t, r))
				_, err := r.Restore(ctx, cpA.ID, &memTarget{b: make([]byte, len(dataA))}, RestoreOptions{})
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChunkNotFound) {
					t.Fatalf("restore of %s: %v, want it to fail", cpA.ID, err)
				}
				for _, deep := range []bool{false, true} {
					if rep, err := r.Verify(ctx, VerifyOptions{Deep: deep}); err != nil || rep.OK {
						t.Fatalf("verify deep=%v after repair: %+v, %v; want the damage still reported", deep, rep, err)
					}
				}
			}
			if got := restoreBytes(t, r, cpB.ID, int64(len(dataB))); !bytes.Equal(got, dataB) {
				t.Fatal("the other checkpoint no longer restores")
			}
		})
	}
}

// TestShardBelongsToObject checks the header read refuses a shard put under
// another object's name, and still reads a version-1 shard.
func TestShardBelongsToObject(t *testing.T) {
	ctx := context.Background()
	for _, v1 := range []bool{false, true} {
		t.Run("v1="+strconv.FormatBool(v1), func(t *testing.T) {
			r, _, _, _, _, packA, packB := swapRepo(t)
			copyShard(t, r, 3, packB, packA, v1)
			copyShard(t, r, 4, packB, packB, v1)
			dropHeaderCaches(r)
			_, errA := r.obj.Header(ctx, packA, 3)
			_, errB := r.obj.Header(ctx, packB, 4)
			if v1 {
				if errA != nil || errB != nil {
					t.Fatalf("version-1 shards refused: %v, %v", errA, errB)
				}
				return
			}
			if !errors.Is(errA, ErrCorrupt) || errB != nil {
				t.Fatalf("header of a shard of %s under %s: %v; of its own shard: %v", packB, packA, errA, errB)
			}
		})
	}
}

// TestDeepVerifyStaleIndex: deep verify finds chunks in the packs alone and
// warns when the index places a referenced chunk in a pack without it.
func TestDeepVerifyStaleIndex(t *testing.T) {
	ctx := context.Background()
	r, _, _, cpA, _, _, packB := swapRepo(t)
	var logs logLines
	r.log = logs.log
	_, bm, err := r.LoadCheckpoint(ctx, cpA.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Point one of A's chunks at B's pack, as an index left behind by
	// another pack's shards would.
	id := bm.Chunks[0].ID
	p, err := ParsePackID(packB[len(packB)-32:])
	if err != nil {
		t.Fatal(err)
	}
	entries, err := r.packHeader(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.idx.AddPack(p, index.PackInfo{Chunks: 1}, []packEntry{{ID: id, Offset: entries[0].Offset, StoredLen: entries[0].StoredLen, RawLen: entries[0].RawLen, Sum: entries[0].Sum}}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("deep verify %+v: every chunk is in its pack, the index is only stale", rep)
	}
	if w := logs.containing("rebuild-index"); len(w) != 1 || !strings.Contains(w[0], id.String()) {
		t.Fatalf("warnings %q, want one naming chunk %s", w, id)
	}
}
