package dedup

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"cairn/dedup/store"
)

// Fuzz targets for every decoder of stored bytes. Stored bytes may be
// damaged or hostile: decoders must return an error, never panic or
// allocate without bound, and what they accept must survive re-encoding.
// Seeds are real encodings, so mutations start from valid input.

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
