package dedup

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"cairn/dedup/index"
)

// copyIndexFiles copies the regular files of one directory (badger's index
// has no subdirectories) into another, created if missing. It keeps them
// sparse: badger's logs are mostly holes, and copying their zeros made the
// test crawl.
func copyIndexFiles(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 4096)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(to, e.Name()), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(b); off += len(zero) {
			page := b[off:min(off+len(zero), len(b))]
			if bytes.Equal(page, zero[:len(page)]) {
				continue
			}
			if _, err := f.WriteAt(page, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(int64(len(b))); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// indexFileKind names a badger file by what it is: "sst", "vlog", "mem",
// or its fixed name (MANIFEST, KEYREGISTRY, DISCARD).
func indexFileKind(name string) string {
	if ext := filepath.Ext(name); ext != "" {
		return ext[1:]
	}
	return name
}

// truncLengths are the lengths a file of size n is cut to: 1 byte, a half
// and all but the last byte.
func truncLengths(n int64) []int64 {
	var out []int64
	for _, l := range []int64{1, n / 2, n - 1} {
		if l >= 1 && l < n && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// TestTruncatedIndexRebuilt cuts each kind of badger file to several lengths
// and opens the repository: on the landed code a cut .sst crashed the process
// from inside badger's table loading. The index must be found damaged and
// rebuilt, and nothing committed may be lost: the checkpoint lists and
// restores, and a second backup of the same bytes stores nothing new (the
// rebuilt index knows every chunk).
func TestTruncatedIndexRebuilt(t *testing.T) {
	ctx := context.Background()
	data := randomData(91, 1<<20+4321)
	for _, enc := range []bool{false, true} {
		name := "clear"
		var pw []byte
		if enc {
			name, pw = "encrypted", []byte("pw")
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{NoSync: true, Password: pw}
			r, err := Init(ctx, dir, InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, Password: pw}, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A copy taken while the index is open has badger's
			// write-ahead log (.mem) in it, as a killed process leaves.
			live := filepath.Join(t.TempDir(), "live")
			copyIndexFiles(t, filepath.Join(dir, "index"), live)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			closed := filepath.Join(t.TempDir(), "closed")
			copyIndexFiles(t, filepath.Join(dir, "index"), closed)

			type victim struct{ snapshot, file string }
			seen := map[string]bool{}
			var victims []victim
			for _, snap := range []string{closed, live} {
				ents, _ := os.ReadDir(snap)
				for _, e := range ents {
					kind := indexFileKind(e.Name())
					// LOCK is badger's own lock file, read by nobody;
					// cairn.reserve is space, not data.
					if e.Name() == index.LockName || e.Name() == index.ReserveName || e.Name() == "LOCK" || seen[kind] {
						continue
					}
					seen[kind] = true
					victims = append(victims, victim{snap, e.Name()})
				}
			}
			for _, want := range []string{"sst", "vlog", "mem", "MANIFEST", "KEYREGISTRY", "DISCARD"} {
				if !seen[want] {
					t.Fatalf("no %s file in the index to cut (have %v)", want, seen)
				}
			}
			for _, v := range victims {
				fi, err := os.Stat(filepath.Join(v.snapshot, v.file))
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range truncLengths(fi.Size()) {
					t.Run(indexFileKind(v.file)+"/"+filepath.Base(v.snapshot)+"/"+strconv.FormatInt(n, 10), func(t *testing.T) {
						idx := filepath.Join(dir, "index")
						if err := os.RemoveAll(idx); err != nil {
							t.Fatal(err)
						}
						copyIndexFiles(t, v.snapshot, idx)
						if err := os.Truncate(filepath.Join(idx, v.file), n); err != nil {
							t.Fatal(err)
						}
						var notes []string
						o := opts
						o.Log = func(f string, a ...any) { notes = append(notes, f) }
						r, err := Open(ctx, dir, o)
						if err != nil {
							t.Fatalf("open with %s cut to %d bytes: %v", v.file, n, err)
						}
						defer r.Close()
						if _, ok := r.getMetaOrList(ctx, cp.ID); !ok {
							t.Errorf("checkpoint %s not listed after reopening", cp.ID)
						}
						if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
							t.Fatalf("restore differs after reopening with %s cut to %d bytes", v.file, n)
						}
						// badger replays its write-ahead log up to the first
						// bad record, as after a crash; what it drops there
						// is what a crash would drop, so only files whose
						// damage is detectable must lose nothing.
						if indexFileKind(v.file) == "mem" {
							return
						}
						again, err := r.Backup(ctx, newMemSource("vol2", data), BackupOptions{})
						if err != nil {
							t.Fatal(err)
						}
						if again.NewBytes != 0 {
							t.Errorf("%s cut to %d bytes: a second backup of the same bytes added %d new bytes (notes: %s): the index lost entries",
								v.file, n, again.NewBytes, strings.Join(notes, "; "))
						}
					})
				}
			}
		})
	}
}

// getMetaOrList finds a checkpoint by listing, as commands do.
func (r *Repository) getMetaOrList(ctx context.Context, id string) (*Checkpoint, bool) {
	cps, err := r.Checkpoints(ctx)
	if err != nil {
		return nil, false
	}
	for _, c := range cps {
		if c.ID == id {
			return c, true
		}
	}
	return nil, false
}

// indexFilesContaining lists the files under dir whose bytes contain s.
func indexFilesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestIndexMetadataAtRest backs up a source with a distinctive name and tags
// and looks for them in every file of the index, while it is open (badger's
// write-ahead log) and after close. An encrypted repository's index must
// hold neither; the landed code cached the checkpoint JSON there in clear.
// The unencrypted case is the control that the search can find them.
func TestIndexMetadataAtRest(t *testing.T) {
	ctx := context.Background()
	const name, tag = "ceph-pool-zebrafinch/volume-xylophone-4711", "tenant-quetzalcoatl"
	for _, enc := range []bool{false, true} {
		t.Run(map[bool]string{false: "clear", true: "encrypted"}[enc], func(t *testing.T) {
			var pw []byte
			if enc {
				pw = []byte("pw")
			}
			dir := t.TempDir()
			r, err := Init(ctx, dir, InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, Password: pw}, nil, Options{NoSync: true, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Backup(ctx, newMemSource(name, randomData(5, 300<<10)), BackupOptions{Tags: map[string]string{"owner": tag}}); err != nil {
				t.Fatal(err)
			}
			idx := filepath.Join(dir, "index")
			open := append(indexFilesContaining(t, idx, name), indexFilesContaining(t, idx, tag)...)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			closed := append(indexFilesContaining(t, idx, name), indexFilesContaining(t, idx, tag)...)
			if enc && len(open)+len(closed) > 0 {
				t.Fatalf("source name or tag in clear in the encrypted repository's index: open %v, closed %v", open, closed)
			}
			if !enc && len(closed) == 0 {
				t.Fatalf("control: the unencrypted index holds neither %q nor %q: the search is broken", name, tag)
			}
		})
	}
}

// TestIndexInClearRebuiltEncrypted opens an encrypted repository whose index
// was written in clear, as releases before index encryption wrote it: it
// must be found, rebuilt encrypted, and hold no metadata in clear after.
func TestIndexInClearRebuiltEncrypted(t *testing.T) {
	ctx := context.Background()
	const name = "volume-gnu-tapir-9931"
	pw := []byte("pw")
	dir := t.TempDir()
	opts := Options{NoSync: true, Password: pw}
	r, err := Init(ctx, dir, InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, Password: pw}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(6, 500<<10)
	cp, err := r.Backup(ctx, newMemSource(name, data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// What the landed release left: the same index, in clear, with the
	// checkpoint's metadata cached.
	idx := filepath.Join(dir, "index")
	if err := os.RemoveAll(idx); err != nil {
		t.Fatal(err)
	}
	old, _, err := index.Open(idx, index.Options{Log: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.PutMeta(cp.ID, meta); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if len(indexFilesContaining(t, idx, name)) == 0 {
		t.Fatal("setup: the index in clear does not hold the source name")
	}

	var notes []string
	opts.Log = func(f string, a ...any) { notes = append(notes, f) }
	r, err = Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.IndexRebuild(); !ok {
		t.Errorf("the index in clear was opened as it was, not rebuilt (notes: %q)", notes)
	}
	if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("restore differs after the rebuild")
	}
	again, err := r.Backup(ctx, newMemSource("copy", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.NewBytes != 0 {
		t.Errorf("a copy stored %d new bytes after the rebuild: the rebuilt index lost chunks", again.NewBytes)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := indexFilesContaining(t, idx, name); len(hits) > 0 {
		t.Errorf("source name still in clear in %v after the rebuild", hits)
	}
}
