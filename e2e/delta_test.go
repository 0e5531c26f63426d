package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDeltaReads: a checkpoint whose blocks are stored as deltas over its
// parent's (scattered 4 KiB writes, docs/format.md §9.3) reads back exactly
// through the real NBD client and through the FUSE mount, and restores.
func TestDeltaReads(t *testing.T) {
	requireNBDTool(t, "nbdcopy", "libnbd-bin")
	fuseRequire(t)
	e, src, hash1, cp1 := nbdSetup(t)
	// 40 pages in the data on either side of the hole.
	pages := map[int64]bool{}
	for i := range 40 {
		pg := int64(i*97) % (nbdHoleOff / 4096)
		if i%2 == 1 {
			pg += (nbdHoleOff + nbdHoleLen) / 4096
		}
		pages[pg] = true
		writeAt(t, src, randomBytes(uint64(500+i), 4096), pg*4096)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	hash := fileHash(t, src)
	cp2 := e.backup(src, "--parent", cp1.ID)
	if changed := int64(len(pages)) * 4096; cp2.NewBytes != changed {
		t.Errorf("incremental new_bytes %d, want the %d bytes of the pages written: not stored as deltas", cp2.NewBytes, changed)
	}

	t.Run("nbdcopy", func(t *testing.T) {
		s := e.startNBD("")
		out := filepath.Join(e.scratch, "delta.raw")
		writeFile(t, out, nil)
		mustNBDTool(t, "nbdcopy", s.uri(cp2.ID), out)
		if got := fileHash(t, out); got != hash {
			t.Fatalf("nbdcopy of the delta checkpoint: sha256 %s, want %s", got, hash)
		}
	})
	t.Run("fuse", func(t *testing.T) {
		s := fuseStart(t, e)
		got, err := os.ReadFile(filepath.Join(s.dir, "by-id", cp2.ID, "disk.raw"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("the delta checkpoint reads differently through FUSE")
		}
	})
	t.Run("restore", func(t *testing.T) {
		e.checkRestore(cp2.ID, hash, "delta checkpoint")
		e.checkRestore(cp1.ID, hash1, "its parent")
	})
}
