package dedup

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// Fuzz targets for the decoders that need a repository's keys and codecs.
// The repository is unencrypted: past authentication, an encrypted one runs
// the same code, and random bytes never authenticate.

func FuzzDecodeManifest(f *testing.F) {
	r := TestRepository(f)
	for _, s := range manifestSeeds() {
		b, err := r.encodeManifest(s.cp, s.bm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.cp.ID, b)
	}
	f.Fuzz(func(t *testing.T, id string, b []byte) {
		meta, _, merr := r.decodeManifest(id, b, false)
		cp, bm, err := r.decodeManifest(id, b, true)
		if err != nil {
			return
		}
		if merr != nil || !sameMeta(t, meta, cp) {
			t.Fatalf("metadata-only decode disagrees: %v", merr)
		}
		if cp.ID != id {
			t.Fatalf("manifest %q accepted under name %q", cp.ID, id)
		}
		checkBlockMap(t, cp, bm)
		again, err := r.encodeManifest(cp, bm)
		if err != nil {
			t.Fatalf("re-encode accepted manifest: %v", err)
		}
		cp2, bm2, err := r.decodeManifest(id, again, true)
		if err != nil || !sameMeta(t, cp, cp2) || !reflect.DeepEqual(bm, bm2) {
			t.Fatalf("manifest changed across a re-encode: %v", err)
		}
	})
}

func FuzzDecodeBlob(f *testing.F) {
	r := TestRepository(f)
	for _, raw := range [][]byte{
		bytes.Repeat([]byte("cairn "), 1000),
		randomData(1, 4096),
		{0},
	} {
		id := r.hash.id(raw)
		stored, flags := r.encodeBlob(id, raw, &blobScratch{})
		f.Add(id[:], flags, uint32(len(raw)), stored)
		// Framed blobs (§9.2), their table and frames, in small frames.
		stored, flags = r.encodeFramed(id, raw, &blobScratch{}, frameShiftBase, true)
		f.Add(id[:], flags, uint32(len(raw)), bytes.Clone(stored))
	}
	f.Fuzz(func(t *testing.T, id []byte, flags uint8, rawLen uint32, stored []byte) {
		e := packEntry{Flags: flags, RawLen: rawLen % (maxBlockSize + 1)}
		copy(e.ID[:], id)
		// decodeBlob decrypts in place: the fuzzer keeps its input.
		plain, err := r.decodeBlob(e, bytes.Clone(stored), nil)
		if err != nil {
			return
		}
		if len(plain) != int(e.RawLen) || r.hash.id(plain) != e.ID {
			t.Fatal("decodeBlob returned bytes that do not hash to the chunk ID")
		}
	})
}

// FuzzIndexValues covers the index's value decoders: the index is a cache,
// but its files can be damaged like anything on disk.
func FuzzIndexValues(f *testing.F) {
	loc := chunkLoc{Pack: PackID{7}, packEntry: packEntry{ID: ChunkID{1}, Offset: 1 << 40, StoredLen: 3, RawLen: 4, Flags: 1, Sum: 5}}
	f.Add(encodeLoc(loc))
	f.Add(encodePackInfo(packInfo{Created: time.Unix(1700000000, 5), Length: 1 << 20, ShardBytes: 3 << 19, Chunks: 16}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := decodeLoc(ChunkID{1}, b); err == nil && !bytes.Equal(encodeLoc(l), b) {
			t.Fatal("chunk location does not re-encode to itself")
		}
		if pi, err := decodePackInfo(b); err == nil && !bytes.Equal(encodePackInfo(pi), b) {
			t.Fatal("pack info does not re-encode to itself")
		}
	})
}
