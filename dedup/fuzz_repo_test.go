package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"cairn/dedup/pack"
)

// Fuzz targets for the decoders that need a repository's keys and codecs.
// The repository is unencrypted: past authentication, an encrypted one runs
// the same code, and random bytes never authenticate.

func FuzzDecodeManifest(f *testing.F) {
	r := testRepository(f)
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
	r := testRepository(f)
	for _, raw := range [][]byte{
		bytes.Repeat([]byte("cairn "), 1000),
		randomData(1, 4096),
		{0},
	} {
		id := r.hash.id(raw)
		stored, flags := r.encodeBlob(id, raw, &blobScratch{}, nil)
		f.Add(id[:], flags, uint32(len(raw)), stored)
		// Framed blobs (§9.2), their table and frames, in small frames.
		stored, flags = r.encodeFramed(id, raw, &blobScratch{}, frameShiftBase, r.hash.appendPageHashes(nil, raw))
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

// FuzzDeltaHeader covers the delta header decoder (§9.3): whatever it
// accepts is consistent with the chunk it describes.
func FuzzDeltaHeader(f *testing.F) {
	r := testRepository(f)
	base := randomData(1, 64<<10)
	data := bytes.Clone(base)
	copy(data[8<<10:], randomData(2, 100))
	ps := pageSources{refs: []deltaRef{{id: r.hash.id(base), pack: PackID{3}}}, src: bytes.Repeat([]byte{1}, 16)}
	ps.hashes = r.hash.appendPageHashes(nil, base)
	stored, _, _, _, ok := r.encodeDelta(r.hash.id(data), data, r.hash.appendPageHashes(nil, data), ps, &deltaScratch{})
	if !ok {
		f.Fatal("seed delta refused")
	}
	f.Add(uint32(len(data)), bytes.Clone(stored[4:4+binary.LittleEndian.Uint32(stored)]))
	f.Add(uint32(100), []byte{deltaVersion, 12, 1, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, rawLen uint32, plain []byte) {
		e := packEntry{ID: ChunkID{9}, RawLen: rawLen % (maxBlockSize + 1)}
		h, err := decodeDeltaHeader(e, plain, 4)
		if err != nil {
			return
		}
		pages := pageCount(e.RawLen)
		if len(h.src) != pages || len(h.hashes) != pages*pageHashSize || len(h.ownIdx) != pages {
			t.Fatalf("%d sources, %d hash bytes for %d pages", len(h.src), len(h.hashes), pages)
		}
		if h.ownBytes <= 0 || h.ownBytes > int64(e.RawLen) || len(h.refs) == 0 || len(h.refs) > maxDeltaRefs {
			t.Fatalf("own bytes %d of %d, %d references", h.ownBytes, e.RawLen, len(h.refs))
		}
		for i, s := range h.src {
			if int(s) > len(h.refs) || (s == 0) != (h.ownIdx[i] >= 0) {
				t.Fatalf("page %d: source %d, own index %d", i, s, h.ownIdx[i])
			}
		}
	})
}

// FuzzReadDelta stores fuzzed delta blobs in a pack beside a real base
// chunk and reads them back whole: an error or the exact block, never a
// panic, and never bytes that do not hash to the chunk ID.
func FuzzReadDelta(f *testing.F) {
	ctx := context.Background()
	r, err := Init(ctx, f.TempDir(), InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20}, nil, Options{NoSync: true, FrameSize: 16 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	base := randomData(1, 64<<10)
	cp, err := r.Backup(ctx, newMemSource("v", base), BackupOptions{})
	if err != nil {
		f.Fatal(err)
	}
	_, bm, err := r.LoadCheckpoint(ctx, cp.ID)
	if err != nil {
		f.Fatal(err)
	}
	ps, ok, err := r.parentPages(ctx, bm.Chunks[0].ID, bm.Packs[0])
	if err != nil || !ok {
		f.Fatalf("parent pages: %v, %v", ok, err)
	}
	data := bytes.Clone(base)
	copy(data[20<<10:], randomData(2, 5000))
	id := r.hash.id(data)
	stored, flags, _, _, ok := r.encodeDelta(id, data, r.hash.appendPageHashes(nil, data), ps, &deltaScratch{})
	if !ok {
		f.Fatal("seed delta refused")
	}
	f.Add(flags, bytes.Clone(stored))
	f.Add(flags, bytes.Clone(stored[:len(stored)/2]))
	pid := PackID{0xde, 0x17}
	f.Fuzz(func(t *testing.T, flags uint8, blob []byte) {
		if len(blob) == 0 || len(blob) > 1<<20 {
			return
		}
		if _, err := r.obj.Put(ctx, pack.Name(pid), blob); err != nil {
			t.Fatal(err)
		}
		r.deltaHeaders.Remove(id)
		r.frames = newSharedCache[frameKey](1 << 20)
		dropHeaderCaches(r) // the shard headers of the last input
		loc := chunkLoc{Pack: pid, Entry: packEntry{ID: id, StoredLen: uint32(len(blob)), RawLen: uint32(len(data)), Flags: flags | blobDelta}}
		// A read that neither ends nor fails is a bug too.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, err := r.decodeDelta(tctx, loc, nil)
		if err == nil && !bytes.Equal(got, data) {
			t.Fatal("decodeDelta returned other bytes than the block")
		}
		p := make([]byte, 3000)
		err = r.readDelta(tctx, loc, 19<<10, p)
		if tctx.Err() != nil {
			t.Fatalf("reads of a fuzzed delta hung: %v", err)
		}
	})
}
