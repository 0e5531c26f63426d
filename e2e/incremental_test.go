package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIncremental backs up a 1 GiB image with the default geometry (4 MiB
// blocks, 32 MiB packs), changes about 1% of it and checks that the second
// backup stores only the changed blocks and that both checkpoints restore.
func TestIncremental(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB image: skipped in -short mode")
	}
	const (
		bs     = 4 * mib
		size   = 1 * gib
		pieces = size / bs
	)
	isHole := func(i int64) bool { return i%16 == 0 } // sparse-ish: 1 block in 16 never written
	e := newRepo(t, repoOpts{init: []string{}})
	src := filepath.Join(e.scratch, "disk.img")

	// One random 4 MiB buffer, stamped per piece so that no two blocks are
	// equal; the hash is taken while writing, holes included.
	start := time.Now()
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := randomBytes(42, int(bs))
	zero := make([]byte, bs)
	h := sha256.New()
	var dataBlocks int64
	for i := int64(0); i < pieces; i++ {
		if isHole(i) {
			h.Write(zero)
			continue
		}
		binary.LittleEndian.PutUint64(buf, uint64(i)<<8|0x5a)
		if _, err := f.WriteAt(buf, i*bs); err != nil {
			t.Fatal(err)
		}
		h.Write(buf)
		dataBlocks++
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	before := hex.EncodeToString(h.Sum(nil))
	t.Logf("wrote a %d MiB image (%d data blocks) in %v", size/mib, dataBlocks, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	cp1 := e.backup(src)
	t.Logf("full backup in %v: %+v", time.Since(start).Round(time.Millisecond), cp1)
	if cp1.NewBytes != dataBlocks*bs || cp1.AllocatedBytes != dataBlocks*bs || cp1.HoleBlocks != pieces-dataBlocks {
		t.Errorf("full backup: new_bytes %d, allocated_bytes %d, hole_blocks %d; want %d, %d, %d",
			cp1.NewBytes, cp1.AllocatedBytes, cp1.HoleBlocks, dataBlocks*bs, dataBlocks*bs, pieces-dataBlocks)
	}

	// Change about 1%: three block-aligned regions, 4 + 4 + 2 MiB, in three
	// different data blocks.
	changes := []struct{ block, len int64 }{{37, 4 * mib}, {150, 4 * mib}, {201, 2 * mib}}
	var changedBlocks, changedBytes int64
	for i, c := range changes {
		if isHole(c.block) {
			t.Fatalf("test bug: block %d is a hole", c.block)
		}
		writeAt(t, src, randomBytes(uint64(100+i), int(c.len)), c.block*bs)
		changedBlocks++
		changedBytes += c.len
	}
	after := fileHash(t, src)
	if after == before {
		t.Fatal("test bug: the changes did not change the image")
	}

	start = time.Now()
	cp2 := e.backup(src, "--parent", cp1.ID)
	t.Logf("incremental backup in %v: %+v", time.Since(start).Round(time.Millisecond), cp2)
	if cp2.Parent != cp1.ID {
		t.Errorf("incremental backup has parent %q, want %q", cp2.Parent, cp1.ID)
	}
	// The two blocks rewritten whole are stored whole; the one rewritten
	// by half is stored as a delta of its changed pages (docs/format.md
	// §9.3): new bytes are the bytes changed.
	lo, hi := changedBytes, changedBlocks*bs+2*bs
	if cp2.NewBytes < lo || cp2.NewBytes >= hi {
		t.Errorf("incremental backup new_bytes = %d, want within [%d, %d): %d bytes changed in %d blocks of %d bytes",
			cp2.NewBytes, lo, hi, changedBytes, changedBlocks, bs)
	}
	if cp2.NewChunks < changedBlocks || cp2.NewChunks >= changedBlocks+2 {
		t.Errorf("incremental backup new_chunks = %d, want %d (or one more)", cp2.NewChunks, changedBlocks)
	}
	if cp2.StoredBytes <= 0 || cp2.StoredBytes > cp1.StoredBytes/10 {
		t.Errorf("incremental backup stored_bytes = %d; full backup stored %d", cp2.StoredBytes, cp1.StoredBytes)
	}

	start = time.Now()
	e.checkRestore(cp1.ID, before, "full backup")
	e.checkRestore(cp2.ID, after, "incremental backup")
	t.Logf("two 1 GiB restores and hashes in %v", time.Since(start).Round(time.Millisecond))
}
