package dedup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestOrphanPacksAreNotDamage: a backup killed while writing a pack leaves
// some of its shards and no index entry. That is no checkpoint's loss, so
// verify stays OK and repair does not call it unrecoverable.
func TestOrphanPacksAreNotDamage(t *testing.T) {
	ctx := context.Background()
	r := TestRepository(t)
	if _, err := r.Backup(ctx, NewMemSource("a", randomData(11, 200<<10)), BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	// An orphan: a pack written as a killed backup would, never indexed.
	orphan := newPackID()
	data := append(randomData(12, 100<<10), encodePackTrailer(0)...)
	if _, err := r.obj.put(ctx, packName(orphan), data); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < r.cfg.ParityShards+1; i++ {
		if err := os.Remove(filepath.Join(r.Dir(), "shards", string(rune('0'+i)), packName(orphan))); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Orphans) != 1 || rep.Orphans[0] != packName(orphan) {
		t.Fatalf("verify: ok=%v orphans=%v unrecoverable=%v damaged=%v", rep.OK, rep.Orphans, rep.Unrecoverable, rep.DamagedShards)
	}
	rr, err := r.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Unrecoverable) != 0 || len(rr.Orphans) != 1 {
		t.Fatalf("repair: unrecoverable=%v orphans=%v", rr.Unrecoverable, rr.Orphans)
	}
}
