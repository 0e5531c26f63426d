package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"cairn/dedup/store"
)

// Fuzz targets for every decoder of stored bytes. Stored bytes may be
// damaged or hostile: decoders must return an error, never panic or
// allocate without bound, and what they accept must survive re-encoding.
// Seeds are real encodings, so mutations start from valid input.

func FuzzShardHeader(f *testing.F) {
	for _, n := range []int{0, 1, 511, 512, 513, 3 * 512, 3000} {
		data := randomData(uint64(n), n)
		f.Add(encodeShard("packs/x", 1, 0, 0, int64(n), 512, data))
		f.Add(encodeShard("manifests/y", 4, 2, 5, int64(max(0, 4*n-3)), checksumBlock, data))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed, ferr := parseShardFixed(b)
		h, err := parseShardPrefix(b)
		if err != nil {
			return
		}
		if ferr != nil {
			t.Fatalf("prefix accepted what the fixed header parser refused: %v", ferr)
		}
		if fixed.k != h.k || fixed.shardLen != h.shardLen || fixed.blockSize != h.blockSize {
			t.Fatal("fixed and full header parsers disagree")
		}
		if h.shardLen != (h.objectLen+int64(h.k)-1)/int64(h.k) {
			t.Fatalf("shard length %d accepted for a %d-byte object in %d shards", h.shardLen, h.objectLen, h.k)
		}
		if len(h.sums) != h.blocks() || h.dataOffset() > int64(len(b)) {
			t.Fatalf("table of %d sums for %d blocks, data at %d of %d bytes", len(h.sums), h.blocks(), h.dataOffset(), len(b))
		}
		data := b[h.dataOffset():]
		if int64(len(data)) > h.shardLen {
			data = data[:h.shardLen]
		}
		// Any block-aligned range may be checked, including one past the
		// table: a reader must get an answer, not a panic.
		for off := int64(0); off <= int64(len(data)); off += int64(h.blockSize) {
			h.verifyRange(off, data[off:])
		}
		if int64(len(data)) == h.shardLen && h.verifyRange(0, data) < 0 {
			again, err := parseShardPrefix(encodeShard("", h.k, h.m, h.index, h.objectLen, h.blockSize, data))
			if err != nil || !sameShard(again, h) {
				t.Fatalf("re-encoded shard header differs: %v", err)
			}
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	entries := []packEntry{
		{ID: ChunkID{1}, Offset: 0, StoredLen: 100, RawLen: 65536, Flags: blobCompressed, Sum: 42},
		{ID: ChunkID{2, 3}, Offset: 100, StoredLen: 65536, RawLen: 65536, Sum: 1 << 63},
	}
	f.Add(encodePackHeader(nil), uint64(0))
	f.Add(encodePackHeader(entries[:1]), uint64(100))
	f.Add(encodePackHeader(entries), uint64(65636))
	f.Add(encodePackHeader(entries), uint64(65635))
	f.Fuzz(func(t *testing.T, b []byte, blobsEnd uint64) {
		got, err := decodePackHeader(b, blobsEnd)
		if err != nil {
			return
		}
		for i, e := range got {
			if e.Offset+uint64(e.StoredLen) > blobsEnd || e.Offset+uint64(e.StoredLen) < e.Offset {
				t.Fatalf("entry %d (%d+%d) accepted beyond %d", i, e.Offset, e.StoredLen, blobsEnd)
			}
		}
		if !bytes.Equal(encodePackHeader(got), b) {
			t.Fatal("pack header does not re-encode to itself")
		}
	})
}

func FuzzDecodePackTrailer(f *testing.F) {
	f.Add(encodePackTrailer(0), int64(packTrailerSize))
	f.Add(encodePackTrailer(4+packEntrySize), int64(1<<20))
	f.Add(encodePackTrailer(1<<31), int64(1<<31))
	f.Fuzz(func(t *testing.T, b []byte, packLen int64) {
		hl, err := decodePackTrailer(b, packLen)
		if err != nil {
			return
		}
		if hl < 0 || hl+packTrailerSize > packLen {
			t.Fatalf("header length %d accepted for a pack of %d bytes", hl, packLen)
		}
		if again, err := decodePackTrailer(encodePackTrailer(int(hl)), packLen); err != nil || again != hl {
			t.Fatalf("trailer round trip: %d, %v; want %d", again, err, hl)
		}
	})
}

// manifestSeeds are block maps of every shape: empty, all holes, mixed.
func manifestSeeds() []struct {
	cp *Checkpoint
	bm *BlockMap
} {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	cp := func(size int64) *Checkpoint {
		return &Checkpoint{ID: "0193f7a0-0000-7000-8000-000000000001", Source: "/dev/vda", CreatedAt: at, FinishedAt: at,
			Size: size, BlockSize: 64 << 10, Full: true, Tags: map[string]string{"a": "b"}, Stats: Stats{Blocks: 3}}
	}
	return []struct {
		cp *Checkpoint
		bm *BlockMap
	}{
		{cp(0), &BlockMap{}},
		{cp(3 << 16), &BlockMap{Blocks: 3, Holes: []HoleRun{{0, 3}}}},
		{cp(5<<16 + 1), &BlockMap{Blocks: 6, Holes: []HoleRun{{1, 2}, {5, 1}},
			Packs:  []PackID{{1}, {2}},
			Chunks: []ChunkRef{{ID: ChunkID{9}}, {ID: ChunkID{8}, Pack: 1}, {ID: ChunkID{9}}}}},
	}
}

func FuzzDecodeManifestBody(f *testing.F) {
	for _, s := range manifestSeeds() {
		b, err := encodeManifestBody(s.cp, s.bm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A size whose block count, rounded up naively, wraps negative.
	huge := []byte(`{"id":"x","size":9223372036854775807,"block_size":65536}`)
	f.Add(append(binary.AppendUvarint(nil, uint64(len(huge))), huge...))
	f.Fuzz(func(t *testing.T, b []byte) {
		meta, _, merr := decodeManifestBody(b, false)
		if merr == nil && meta.Size/int64(meta.BlockSize) > maxBlocks {
			t.Fatalf("size %d accepted: more than %d blocks", meta.Size, int64(maxBlocks))
		}
		cp, bm, err := decodeManifestBody(b, true)
		if err != nil {
			return
		}
		if merr != nil || !sameMeta(t, meta, cp) {
			t.Fatalf("metadata-only decode disagrees: %v", merr)
		}
		checkBlockMap(t, cp, bm)
		again, err := encodeManifestBody(cp, bm)
		if err != nil {
			t.Fatalf("re-encode accepted manifest: %v", err)
		}
		cp2, bm2, err := decodeManifestBody(again, true)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v", err)
		}
		if !sameMeta(t, cp, cp2) || !reflect.DeepEqual(bm, bm2) {
			t.Fatal("manifest changed across a re-encode")
		}
	})
}

// sameMeta compares checkpoints by their JSON, which is what is stored
// (time.Time values from different parses differ in their Location pointer).
func sameMeta(t *testing.T, a, b *Checkpoint) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("marshal checkpoint: %v, %v", err1, err2)
	}
	return bytes.Equal(ja, jb)
}

// checkBlockMap checks the invariants readers rely on: every block looks up
// without a panic and every chunk's pack index is valid.
func checkBlockMap(t *testing.T, cp *Checkpoint, bm *BlockMap) {
	t.Helper()
	if want := (cp.Size + int64(cp.BlockSize) - 1) / int64(cp.BlockSize); bm.Blocks != want {
		t.Fatalf("%d blocks for size %d", bm.Blocks, cp.Size)
	}
	step := max(1, bm.Blocks/4096)
	for b := int64(0); b < bm.Blocks; b += step {
		if ref, ok := bm.Lookup(b); ok && int(ref.Pack) >= len(bm.Packs) {
			t.Fatalf("block %d: pack index %d of %d", b, ref.Pack, len(bm.Packs))
		}
	}
	if bm.Blocks > 0 {
		bm.Lookup(bm.Blocks - 1)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, o := range []InitOptions{{}, {BlockSize: 64 << 10, PackSize: 1 << 20, DataShards: 1, NoCompress: true}} {
		cfg, _, err := newConfig(o, time.Unix(1700000000, 0))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(cfg)
		f.Add(b)
	}
	// An encrypted config without running the KDF: only its shape matters.
	enc := &Config{Version: configVersion, ID: "x", BlockSize: 1 << 20, PackSize: 1 << 25, DataShards: 4, ParityShards: 2,
		Compression: "zstd", Encryption: &Encryption{Cipher: "aes-256-gcm", KDF: KDFParams{Algorithm: "argon2id",
			Time: 3, MemoryKiB: 65536, Threads: 2, Salt: make([]byte, 16)}, Keys: make([]byte, 60)}}
	b, _ := json.Marshal(enc)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseConfig(b)
		if err != nil {
			return
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg2, err := parseConfig(again)
		if err != nil {
			t.Fatalf("re-encoded config refused: %v", err)
		}
		if b2, _ := json.Marshal(cfg2); !bytes.Equal(b2, again) {
			t.Fatal("config changed across a re-encode")
		}
	})
}

// FuzzShardObject stores b as the only shard of a pack and reads it the way
// every reader does: whatever the header claims, the read allocates no more
// than the bytes stored, and what it accepts is exactly the stored object.
func FuzzShardObject(f *testing.F) {
	const name = "packs/ab/abababababababababababababababab"
	for _, n := range []int{0, 1, 512, 3000} {
		data := randomData(uint64(n), n)
		f.Add(encodeShard(name, 1, 0, 0, int64(n), 512, data))
		f.Add(encodeShard("packs/other", 1, 0, 0, int64(n), 512, data))
	}
	v1 := encodeShard(name, 1, 0, 0, 600, 512, randomData(7, 600))
	v1[4] = 1
	binary.LittleEndian.PutUint32(v1[28:], 0)
	f.Add(v1)
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		s := store.NewMem()
		if err := s.Put(ctx, name, b); err != nil {
			t.Fatal(err)
		}
		c, err := newCoded(1, 0, []store.Store{s})
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.header(ctx, name, 0)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("header error is neither corrupt nor unsupported: %v", err)
			}
			return
		}
		if h.dataOffset()+h.shardLen != int64(len(b)) || !h.belongsTo(name) {
			t.Fatalf("header of a %d-byte shard accepted: data at %d, %d bytes, tag %08x", len(b), h.dataOffset(), h.shardLen, h.tag)
		}
		if got, err := c.get(ctx, name); err == nil && int64(len(got)) != h.objectLen {
			t.Fatalf("read %d bytes of a %d-byte object", len(got), h.objectLen)
		}
	})
}

// FuzzChooseConfig splits b into config copies at each 0xff byte: whatever
// they hold, the vote returns a config only when a strict majority of the
// valid copies agree on it, and names every other copy as damaged.
func FuzzChooseConfig(f *testing.F) {
	cfg, _, err := newConfig(InitOptions{DataShards: 2, ParityShards: 1}, time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(cfg)
	sep := []byte{0xff}
	f.Add(bytes.Join([][]byte{good, good, good}, sep))
	f.Add(bytes.Join([][]byte{good, good[1:], good}, sep))
	f.Add(bytes.Join([][]byte{good, {}, []byte("{}")}, sep))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := bytes.Split(b, sep)
		if len(parts) > maxShards {
			return
		}
		copies := make([]configCopy, len(parts))
		for i, p := range parts {
			copies[i] = configCopy{index: i, store: "s", raw: p}
			if len(p) == 0 {
				copies[i].err = store.ErrNotFound
			}
		}
		ch, err := chooseConfig(copies)
		if err != nil {
			return
		}
		agree, valid := 0, 0
		want, _ := json.Marshal(ch.cfg)
		for _, c := range copies {
			if c.err != nil {
				continue
			}
			if got, err := parseConfig(c.raw); err == nil {
				valid++
				if b, _ := json.Marshal(got); bytes.Equal(b, want) {
					agree++
				}
			}
		}
		if 2*agree <= valid {
			t.Fatalf("config chosen by %d of %d valid copies", agree, valid)
		}
		if len(ch.damage) != len(copies)-count(copies, ch.ref) {
			t.Fatalf("%d copies named damaged, %d differ from the reference", len(ch.damage), len(copies)-count(copies, ch.ref))
		}
	})
}

func count(copies []configCopy, ref []byte) int {
	n := 0
	for _, c := range copies {
		if c.err == nil && bytes.Equal(c.raw, ref) {
			n++
		}
	}
	return n
}
