package index

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn/dedup/pack"
)

// FuzzIndexValues covers the index's value decoders: the index is a cache,
// but its files can be damaged like anything on disk.
func FuzzIndexValues(f *testing.F) {
	loc := pack.Loc{Pack: pack.ID{7}, Entry: pack.Entry{ID: pack.ChunkID{1}, Offset: 1 << 40, StoredLen: 3, RawLen: 4, Flags: 1, Sum: 5}}
	f.Add(encodeLoc(loc))
	f.Add(encodePackInfo(PackInfo{Created: time.Unix(1700000000, 5), Length: 1 << 20, ShardBytes: 3 << 19, Chunks: 16}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := decodeLoc(pack.ChunkID{1}, b); err == nil && !bytes.Equal(encodeLoc(l), b) {
			t.Fatal("chunk location does not re-encode to itself")
		}
		if pi, err := decodePackInfo(b); err == nil && !bytes.Equal(encodePackInfo(pi), b) {
			t.Fatal("pack info does not re-encode to itself")
		}
	})
}

// FuzzCheckTableFooter feeds arbitrary bytes to the footer check as a table
// file: it must return an error or nil, never panic (badger's own reader
// panicked on a cut table, which is why the check exists).
func FuzzCheckTableFooter(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{8, 1, 16, 0, 0, 0, 0, 4, 0, 0, 0, 4})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "000001.sst")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = checkTableFooter(path)
	})
}
