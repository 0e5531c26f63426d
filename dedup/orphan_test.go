package dedup

import (
	"bytes"
	"context"

	"github.com/zeebo/xxh3"
	"os"
	"path/filepath"
	"testing"

	"cairn/dedup/pack"
)

// TestOrphanPacksAreNotDamage: a backup killed while writing a pack leaves
// some of its shards and no index entry. That is no checkpoint's loss, so
// verify stays OK and repair does not call it unrecoverable.
func TestOrphanPacksAreNotDamage(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	if _, err := r.Backup(ctx, newMemSource("a", randomData(11, 200<<10)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	// An orphan: a pack written as a killed backup would, never indexed,
	// with a readable header (in the last data shard) over lost chunks.
	orphan := pack.NewID()
	blob := randomData(12, 100<<10)
	id := r.hash.id(blob)
	hdr := pack.EncodeHeader([]packEntry{{ID: id, StoredLen: uint32(len(blob)), RawLen: uint32(len(blob)), Sum: xxh3.Hash(blob)}})
	data := append(append(append([]byte(nil), blob...), hdr...), pack.EncodeTrailer(len(hdr))...)
	if _, err := r.obj.Put(ctx, pack.Name(orphan), data); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < r.cfg.ParityShards+1; i++ {
		if err := os.Remove(filepath.Join(r.Dir(), "shards", string(rune('0'+i)), pack.Name(orphan))); err != nil {
			t.Fatal(err)
		}
	}
	for _, deep := range []bool{false, true} {
		rep, err := r.Verify(ctx, VerifyOptions{Deep: deep})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || len(rep.Orphans) != 1 || rep.Orphans[0] != pack.Name(orphan) {
			t.Fatalf("verify deep=%v: ok=%v orphans=%v unrecoverable=%v damaged=%v bad=%v",
				deep, rep.OK, rep.Orphans, rep.Unrecoverable, rep.DamagedShards, rep.BadChunks)
		}
	}
	rr, err := r.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Unrecoverable) != 0 || len(rr.Orphans) != 1 {
		t.Fatalf("repair: unrecoverable=%v orphans=%v", rr.Unrecoverable, rr.Orphans)
	}
}

// TestDamagedIndexIsRebuilt: a kill while badger creates its files can leave
// an index that does not open. It is a cache, so opening rebuilds it.
func TestDamagedIndexIsRebuilt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Init(ctx, dir, InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20}, nil, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(21, 300<<10)
	cp, err := r.Backup(ctx, newMemSource("a", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := os.WriteFile(filepath.Join(dir, "index", "MANIFEST"), []byte("not a badger manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatalf("open with a damaged index: %v", err)
	}
	defer r.Close()
	if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("restore after index rebuild differs")
	}
	again, err := r.Backup(ctx, newMemSource("a", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.NewBytes != 0 {
		t.Fatalf("rebuilt index lost chunk locations: %d new bytes", again.NewBytes)
	}
}
