package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// indexFiles returns the index directory's badger files of one kind
// (extension ".sst", or a name such as "MANIFEST").
func indexFiles(t *testing.T, index, kind string) []string {
	t.Helper()
	ents, err := os.ReadDir(index)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() == kind || filepath.Ext(e.Name()) == kind {
			out = append(out, filepath.Join(index, e.Name()))
		}
	}
	return out
}

// TestIndexTruncated cuts badger's files in the index, through the binary:
// on the landed code an .sst cut to any length panicked every writing
// command, `repo rebuild-index` included. Now a backup and rebuild-index
// must succeed, say that they rebuilt the index, and lose nothing.
func TestIndexTruncated(t *testing.T) {
	e := newRepo(t, repoOpts{})
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(71, int(2*mib)))
	hash := fileHash(t, src)
	cp := e.backup(src)
	index := filepath.Join(e.repo, "index")

	cases := []struct {
		kind    string
		cmd     []string
		lengths func(size int64) []int64
	}{
		{".sst", []string{"backup", "--source", src, "--json"}, func(n int64) []int64 { return []int64{1, n / 2, n - 1} }},
		{".sst", []string{"repo", "rebuild-index"}, func(n int64) []int64 { return []int64{1, n / 3, n - 1} }},
		{"MANIFEST", []string{"backup", "--source", src, "--json"}, func(n int64) []int64 { return []int64{1, n - 1} }},
		{"MANIFEST", []string{"repo", "rebuild-index"}, func(n int64) []int64 { return []int64{n / 2} }},
	}
	for _, c := range cases {
		files := indexFiles(t, index, c.kind)
		if len(files) == 0 {
			t.Fatalf("no %s file in %s", c.kind, index)
		}
		fi, err := os.Stat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.lengths(fi.Size()) {
			t.Run(c.kind+"/"+c.cmd[0]+"/"+strconv.FormatInt(n, 10), func(t *testing.T) {
				// Each run leaves a fresh index: cut the file it has now.
				files := indexFiles(t, index, c.kind)
				if len(files) == 0 {
					t.Fatalf("no %s file in %s", c.kind, index)
				}
				if err := os.Truncate(files[0], min(n, sizeOf(t, files[0])-1)); err != nil {
					t.Fatal(err)
				}
				r := e.run(c.cmd...)
				if r.code != 0 || strings.Contains(r.stderr, "panic") {
					t.Fatalf("with %s cut to %d bytes:\n%s", filepath.Base(files[0]), n, r)
				}
				if c.cmd[0] == "backup" && !strings.Contains(r.stderr, "rebuilding it") {
					t.Errorf("with %s cut to %d bytes the backup said nothing of a rebuild:\n%s", filepath.Base(files[0]), n, r)
				}
				if c.cmd[0] == "backup" {
					var got checkpoint
					if err := jsonUnmarshal(r.stdout, &got); err != nil || got.NewBytes != 0 {
						t.Errorf("backup of unchanged bytes after the rebuild: new_bytes %d (%v); want 0, the rebuilt index lost chunks", got.NewBytes, err)
					}
				}
				e.checkRestore(cp.ID, hash, "after a rebuild of a cut index")
			})
		}
	}
	e.must("verify")
}

func sizeOf(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestEncryptedIndexNoPlaintext backs up a source with a distinctive name and
// tag into an encrypted repository and searches every file under the index
// for them: the landed code cached checkpoint metadata there in clear.
func TestEncryptedIndexNoPlaintext(t *testing.T) {
	e := newRepo(t, repoOpts{password: "correct horse"})
	src := filepath.Join(e.scratch, "volume-okapi-narwhal-2291.img")
	writeFile(t, src, randomBytes(72, int(mib)))
	cp := e.backup(src, "--tag", "owner=tenant-axolotl-5150")
	for _, secret := range []string{"volume-okapi-narwhal-2291", "tenant-axolotl-5150"} {
		err := filepath.WalkDir(filepath.Join(e.repo, "index"), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), secret) {
				t.Errorf("%q in clear in %s", secret, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.checkRestore(cp.ID, fileHash(t, src), "encrypted index")
}
