package erasure

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"cairn/dedup/store"
)

// Fuzz targets for the shard decoders. Stored bytes may be damaged or
// hostile: decoders must return an error, never panic or allocate without
// bound, and what they accept must survive re-encoding. Seeds are real
// encodings, so mutations start from valid input.

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func FuzzShardHeader(f *testing.F) {
	for _, n := range []int{0, 1, 511, 512, 513, 3 * 512, 3000} {
		data := randomData(uint64(n), n)
		f.Add(encodeShard("packs/x", 1, 0, 0, int64(n), 512, data))
		f.Add(encodeShard("manifests/y", 4, 2, 5, int64(max(0, 4*n-3)), checksumBlock, data))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed, ferr := parseShardFixed(b)
		h, err := ParseShardPrefix(b)
		if err != nil {
			return
		}
		if ferr != nil {
			t.Fatalf("prefix accepted what the fixed header parser refused: %v", ferr)
		}
		if fixed.K != h.K || fixed.ShardLen != h.ShardLen || fixed.BlockSize != h.BlockSize {
			t.Fatal("fixed and full header parsers disagree")
		}
		if h.ShardLen != (h.ObjectLen+int64(h.K)-1)/int64(h.K) {
			t.Fatalf("shard length %d accepted for a %d-byte object in %d shards", h.ShardLen, h.ObjectLen, h.K)
		}
		if len(h.Sums) != h.blocks() || h.DataOffset() > int64(len(b)) {
			t.Fatalf("table of %d sums for %d blocks, data at %d of %d bytes", len(h.Sums), h.blocks(), h.DataOffset(), len(b))
		}
		data := b[h.DataOffset():]
		if int64(len(data)) > h.ShardLen {
			data = data[:h.ShardLen]
		}
		// Any block-aligned range may be checked, including one past the
		// table: a reader must get an answer, not a panic.
		for off := int64(0); off <= int64(len(data)); off += int64(h.BlockSize) {
			h.verifyRange(off, data[off:])
		}
		if int64(len(data)) == h.ShardLen && h.verifyRange(0, data) < 0 {
			again, err := ParseShardPrefix(encodeShard("", h.K, h.M, h.Index, h.ObjectLen, h.BlockSize, data))
			if err != nil || !sameShard(again, h) {
				t.Fatalf("re-encoded shard header differs: %v", err)
			}
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
		c, err := New(1, 0, []store.Store{s}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.Header(ctx, name, 0)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("header error is neither corrupt nor unsupported: %v", err)
			}
			return
		}
		if h.DataOffset()+h.ShardLen != int64(len(b)) || !h.belongsTo(name) {
			t.Fatalf("header of a %d-byte shard accepted: data at %d, %d bytes, tag %08x", len(b), h.DataOffset(), h.ShardLen, h.Tag)
		}
		if got, err := c.Get(ctx, name); err == nil && int64(len(got)) != h.ObjectLen {
			t.Fatalf("read %d bytes of a %d-byte object", len(got), h.ObjectLen)
		}
	})
}
