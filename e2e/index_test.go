package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIndexLoss deletes the badger index, which must be rebuildable from the
// shard stores alone: explicitly with `repo rebuild-index`, and implicitly
// when a command opens a repository whose index is missing.
func TestIndexLoss(t *testing.T) {
	const bs = 64 * kib
	e := newRepo(t, repoOpts{})
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(21, int(8*mib)))

	type saved struct{ id, hash string }
	var cps []saved
	for i := range 3 {
		if i > 0 {
			writeAt(t, src, randomBytes(uint64(22+i), int(bs*5)), int64(i)*mib)
		}
		h := fileHash(t, src)
		cps = append(cps, saved{e.backup(src).ID, h})
	}
	index := filepath.Join(e.repo, "index")
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("no index at %s after backups: %v", index, err)
	}

	checkAll := func(when string) {
		t.Helper()
		if n := len(e.checkpoints()); n < len(cps) {
			t.Fatalf("%s: %d checkpoints listed, want %d", when, n, len(cps))
		}
		for _, c := range cps {
			e.checkRestore(c.id, c.hash, when)
		}
	}

	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	e.must("repo", "rebuild-index")
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("rebuild-index left no index at %s: %v", index, err)
	}
	checkAll("after rebuild-index")

	// The rebuilt index must know every chunk: a copy at another path (no
	// parent checkpoint to lean on) stores nothing new.
	cpy := filepath.Join(e.scratch, "copy.img")
	copyFile(t, src, cpy)
	if cp := e.backup(cpy); cp.NewBytes != 0 || cp.StoredBytes != 0 {
		t.Errorf("backup of a copy after rebuild-index: new_bytes %d, stored_bytes %d; want 0 (the index lost chunks)", cp.NewBytes, cp.StoredBytes)
	}

	// Lose it again and go straight to restore.
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	e.checkRestore(cps[0].id, cps[0].hash, "restore with the index missing")
	checkAll("after an implicit rebuild")

	// And a backup with the index missing still deduplicates.
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	cpy2 := filepath.Join(e.scratch, "copy2.img")
	copyFile(t, src, cpy2)
	if cp := e.backup(cpy2); cp.NewBytes != 0 {
		t.Errorf("backup of a copy with the index missing: new_bytes %d, want 0", cp.NewBytes)
	}
	checkAll("after a backup with the index missing")
}
