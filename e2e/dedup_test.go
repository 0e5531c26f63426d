package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDedup checks that data already in the repository is not stored again.
//
// stored_bytes counts the pack shards a backup wrote (after compression,
// encryption and parity): dedup/backup.go sets it from the packer alone, and
// the manifest cannot be counted since the figure lives inside it. So a
// backup that adds no chunk must report stored_bytes == 0 and leave the pack
// files as they were; only a manifest is added.
func TestDedup(t *testing.T) {
	const bs = 64 * kib

	t.Run("copy at another path", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		a := filepath.Join(e.scratch, "a", "disk.img")
		b := filepath.Join(e.scratch, "b", "disk-copy.img")
		for _, d := range []string{filepath.Dir(a), filepath.Dir(b)} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		data := randomBytes(11, int(5*mib+777))
		copy(data[2*mib:], make([]byte, 3*bs)) // some holes as well
		writeFile(t, a, data)
		copyFile(t, a, b)
		want := fileHash(t, a)

		cp1 := e.backup(a)
		if cp1.NewBytes == 0 || cp1.StoredBytes == 0 {
			t.Fatalf("first backup stored nothing: %+v", cp1)
		}
		packs := e.shardFiles("packs")
		manifests := e.shardFiles("manifests")

		cp2 := e.backup(b)
		if cp2.Source == cp1.Source {
			t.Errorf("both checkpoints have source %q; the copy lives at another path", cp2.Source)
		}
		if cp2.NewBytes != 0 || cp2.NewChunks != 0 || cp2.StoredBytes != 0 {
			t.Errorf("backup of an identical copy: new_bytes %d, new_chunks %d, stored_bytes %d; want 0 each",
				cp2.NewBytes, cp2.NewChunks, cp2.StoredBytes)
		}
		if cp2.AllocatedBytes != cp1.AllocatedBytes || cp2.ReadBytes == 0 {
			t.Errorf("copy: allocated_bytes %d (original %d), read_bytes %d", cp2.AllocatedBytes, cp1.AllocatedBytes, cp2.ReadBytes)
		}
		if got := e.shardFiles("packs"); !slices.Equal(got, packs) {
			t.Errorf("backup of an identical copy changed the pack files: %d before, %d after", len(packs), len(got))
		}
		if got := e.shardFiles("manifests"); len(got) <= len(manifests) {
			t.Errorf("second backup added no manifest shard (%d before, %d after)", len(manifests), len(got))
		}

		// The original again, unchanged: nothing new either.
		cp3 := e.backup(a)
		if cp3.NewBytes != 0 || cp3.StoredBytes != 0 {
			t.Errorf("re-backup of an unchanged file: new_bytes %d, stored_bytes %d; want 0", cp3.NewBytes, cp3.StoredBytes)
		}
		for _, cp := range []checkpoint{cp1, cp2, cp3} {
			e.checkRestore(cp.ID, want, cp.Source)
		}
	})

	t.Run("within one backup", func(t *testing.T) {
		e := newRepo(t, repoOpts{})
		src := filepath.Join(e.scratch, "repeated.img")
		block := randomBytes(12, int(bs))
		writeFile(t, src, bytes.Repeat(block, 48))
		cp := e.backup(src)
		if cp.NewChunks != 1 || cp.NewBytes != bs || cp.Blocks != 48 {
			t.Errorf("48 equal blocks: new_chunks %d, new_bytes %d, blocks %d; want 1, %d, 48", cp.NewChunks, cp.NewBytes, cp.Blocks, bs)
		}
		e.checkRestore(cp.ID, fileHash(t, src), "repeated block")
	})
}
