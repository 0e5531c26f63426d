package dedup

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The repositories under testdata/format1 were written by cairn before
// chunks were framed (blobs of one zstd frame, sealed whole). They are
// checked in so that every later format is tested against real old bytes,
// not against what today's code believes old bytes were.
//
// To write them again (only ever with the old format's code):
//
//	CAIRN_WRITE_FORMAT1=1 go test ./dedup -run TestWriteFormat1
const format1Dir = "testdata/format1"

var format1Password = []byte("format1-password")

// format1Volumes are the sources of the checked-in checkpoints, made again
// by the test from seeds: random data, text that compresses, a hole, and a
// short last block.
func format1Volumes() map[string][]byte {
	const bs = 64 << 10
	v1 := make([]byte, 6*bs+1000)
	copy(v1, randomData(101, 2*bs))
	copy(v1[3*bs:], bytes.Repeat([]byte("old format text "), 3*bs/16))
	// block 2 stays a hole
	v2 := append([]byte(nil), v1...)
	copy(v2[bs+100:], randomData(102, 5000))
	return map[string][]byte{"v1": v1, "v2": v2}
}

func TestWriteFormat1(t *testing.T) {
	if os.Getenv("CAIRN_WRITE_FORMAT1") == "" {
		t.Skip("writes test data; set CAIRN_WRITE_FORMAT1=1 to run")
	}
	ctx := context.Background()
	for _, enc := range []string{"plain", "encrypted"} {
		dir := filepath.Join(format1Dir, enc)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		o := InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20, DataShards: 2, ParityShards: 1}
		opts := Options{NoSync: true}
		if enc == "encrypted" {
			o.Password, opts.Password = format1Password, format1Password
		}
		r, err := Init(ctx, dir, o, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		vols := format1Volumes()
		for _, name := range []string{"v1", "v2"} {
			if _, err := r.Backup(ctx, newMemSource("vol", vols[name]), BackupOptions{Tags: map[string]string{"version": name}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// The index is rebuilt from the packs when missing; badger's files
		// do not belong in the tree.
		if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the checked-in repository, which tests must not change.
func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}
