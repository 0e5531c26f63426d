package dedup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// markerVolume returns a volume whose plaintext is easy to spot: a block of
// repeated text (which compresses) and a random block (which does not) with
// a marker in it, and the needles that must not appear in an encrypted
// repository.
func markerVolume() (data []byte, compressible, incompressible [][]byte) {
	const bs = 64 << 10
	text := bytes.Repeat([]byte("CAIRN-PLAINTEXT-MARKER-0123456789-"), bs/34+1)[:bs]
	random := randomData(71, bs)
	marker := []byte("CAIRN-RANDOM-MARKER-7f3a9c51e2d0")
	copy(random[1000:], marker)
	data = append(append(append([]byte(nil), text...), random...), randomData(72, bs)...)
	return data, [][]byte{text[:34]}, [][]byte{marker, random[20000:20048], data[2*bs+500 : 2*bs+548]}
}

// TestEncryptionAtRest checks that no plaintext reaches the shard stores
// when the repository is encrypted; the unencrypted run shows the search
// would find it. (The local index holds IDs and checkpoint metadata, never
// chunk data, and badger's preallocated files are slow to scan.)
func TestEncryptionAtRest(t *testing.T) {
	ctx := context.Background()
	data, compressible, incompressible := markerVolume()
	for _, c := range []struct {
		name     string
		password []byte
	}{{"encrypted", []byte("hunter2")}, {"unencrypted", nil}} {
		t.Run(c.name, func(t *testing.T) {
			r := openDamageRepo(t, 4, 2, c.password)
			cp, err := r.Backup(ctx, newMemSource("marker", data), BackupOptions{Tags: map[string]string{"k": "v"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
				t.Fatal("restore differs")
			}
			shards := filepath.Join(r.Dir(), "shards")
			hits := filesContaining(t, shards, append(compressible, incompressible...)...)
			if c.password != nil && len(hits) > 0 {
				t.Fatalf("plaintext found in %v", hits)
			}
			if c.password == nil && len(filesContaining(t, shards, incompressible...)) == 0 {
				t.Fatal("unencrypted repository: marker not found, so the search proves nothing")
			}
		})
	}
}

// TestEncryptionKeys checks the sentinel errors for a wrong or missing key
// and that the right one opens the repository.
func TestEncryptionKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pw := []byte("correct horse battery staple")
	o := InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, Password: pw}
	r, err := Init(ctx, dir, o, nil, Options{NoSync: true, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(81, 300<<10)
	cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		password []byte
		want     error
	}{
		{"wrong", []byte("correct horse battery stapler"), ErrWrongKey},
		{"none", nil, ErrNeedKey},
	} {
		if r, err := Open(ctx, dir, Options{NoSync: true, Password: c.password}); !errors.Is(err, c.want) {
			if err == nil {
				r.Close()
			}
			t.Errorf("%s password: %v, want %v", c.name, err, c.want)
		}
	}
	r, err = Open(ctx, dir, Options{NoSync: true, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("restore differs")
	}
	if rep, err := r.Verify(ctx, VerifyOptions{Deep: true}); err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestIndexLoss deletes the index: Open rebuilds it from the shard stores,
// restores are exact, and an explicit rebuild counts what Verify counts.
func TestIndexLoss(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, DataShards: 3, ParityShards: 1}
	opts := Options{NoSync: true, CacheBytes: 1}
	r, err := Init(ctx, dir, o, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	v1 := randomData(91, 3<<20)
	v2 := append(append([]byte(nil), v1[:1<<20]...), randomData(92, 1<<20+777)...)
	var cps []*Checkpoint
	for _, v := range [][]byte{v1, v2} {
		cp, err := r.Backup(ctx, newMemSource("vol", v), BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	r, err = Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, v := range [][]byte{v1, v2} {
		if got := restoreBytes(t, r, cps[i].ID, int64(len(v))); !bytes.Equal(got, v) {
			t.Fatalf("restore %d after index loss differs", i)
		}
	}
	// The rebuilt index must serve dedup: backing up v1 again adds nothing.
	again, err := r.Backup(ctx, newMemSource("vol", v1), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.NewChunks != 0 {
		t.Errorf("backup after rebuild stored %d new chunks, want 0", again.NewChunks)
	}
	res, err := r.RebuildIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := int(cps[0].NewChunks + cps[1].NewChunks)
	if !rep.OK || res.Packs != rep.Packs || res.Packs != len(objectNames(t, r, "packs/")) ||
		res.Chunks != chunks || rep.Chunks != chunks || res.Checkpoints != 3 || rep.Manifests != 3 || res.BadPacks != 0 {
		t.Fatalf("rebuild %+v, verify %+v, want %d chunks and 3 checkpoints", res, rep, chunks)
	}
}
