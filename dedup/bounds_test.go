package dedup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"cairn/dedup/erasure"
	"cairn/dedup/pack"
)

// TestShardHeaderAbsurdLengths writes absurd lengths into one shard's header
// of a pack and of a manifest. Reading that header costs an error naming the
// object and shard, never an allocation sized by the lie, and the other
// shards still rebuild the checkpoint.
func TestShardHeaderAbsurdLengths(t *testing.T) {
	ctx := context.Background()
	const k = 4
	u64 := func(off int, v uint64) func([]byte, *erasure.ShardHeader) {
		return func(b []byte, _ *erasure.ShardHeader) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	// object claims length L with a matching shard length, so only the
	// bytes actually stored (or the object's kind) can refute it.
	object := func(l int64, blockSize uint32) func([]byte, *erasure.ShardHeader) {
		return func(b []byte, _ *erasure.ShardHeader) {
			binary.LittleEndian.PutUint64(b[8:], uint64(l))
			binary.LittleEndian.PutUint64(b[16:], uint64((l+k-1)/k))
			binary.LittleEndian.PutUint32(b[24:], blockSize)
		}
	}
	cases := []struct {
		name  string
		apply func([]byte, *erasure.ShardHeader)
	}{
		{"object length 2^62", u64(8, 1<<62)},
		{"object length negative", u64(8, 1<<63|5)},
		{"object length all ones", u64(8, ^uint64(0))},
		{"shard length 2^62", u64(16, 1<<62)},
		{"shard length negative", u64(16, ^uint64(0))},
		{"2^39-byte object, 512-byte blocks", object(1<<39, 512)},
		{"2^33-byte object, 512-byte blocks", object(1<<33, 512)},
		{"larger than the file", func(b []byte, h *erasure.ShardHeader) { object(h.ObjectLen+64<<20, uint32(h.BlockSize))(b, h) }},
		{"table larger than the file", func(b []byte, h *erasure.ShardHeader) { object(h.ObjectLen, 512)(b, h) }},
		{"block size 2^31", func(b []byte, _ *erasure.ShardHeader) { binary.LittleEndian.PutUint32(b[24:], 1<<31) }},
		{"block size zero", func(b []byte, _ *erasure.ShardHeader) { binary.LittleEndian.PutUint32(b[24:], 0) }},
	}
	r := openDamageRepo(t, k, 2, nil)
	data := randomData(51, 3<<20+77)
	cp, err := r.Backup(ctx, newMemSource("vol", data), BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects := []string{objectNames(t, r, "packs/")[0], objectNames(t, r, "manifests/")[0]}
	for _, name := range objects {
		for _, c := range cases {
			t.Run(strings.SplitN(name, "/", 2)[0]+" "+c.name, func(t *testing.T) {
				const victim = 1
				p := shardPath(r, victim, name)
				orig, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := os.WriteFile(p, orig, 0o600); err != nil {
						t.Fatal(err)
					}
					dropHeaderCaches(r)
				})
				h, err := erasure.ParseShardPrefix(orig)
				if err != nil {
					t.Fatal(err)
				}
				bad := bytes.Clone(orig)
				c.apply(bad, h)
				if err := os.WriteFile(p, bad, 0o600); err != nil {
					t.Fatal(err)
				}
				dropHeaderCaches(r)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, err = r.obj.Header(ctx, name, victim)
				runtime.ReadMemStats(&after)
				if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
					t.Errorf("reading the damaged header allocated %d bytes", grew)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 1 of "+name) {
					t.Fatalf("header: %v, want ErrCorrupt naming shard 1 of %s", err, name)
				}
				dropHeaderCaches(r)
				if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
					t.Fatal("restore around the damaged shard differs")
				}
				rep, err := r.Verify(ctx, VerifyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.DamagedShards) != 1 || rep.DamagedShards[0].Object != name || rep.DamagedShards[0].Shard != victim {
					t.Fatalf("verify %+v, want shard 1 of %s alone", rep, name)
				}
			})
		}
	}
}

// TestDecodeAbsurdLengths feeds every decoder of pack and manifest bytes the
// lengths a tampered store could hold: each refuses them as corrupt.
func TestDecodeAbsurdLengths(t *testing.T) {
	entry := func(off uint64, stored, raw uint32) []byte {
		return pack.EncodeHeader([]packEntry{{ID: ChunkID{1}, Offset: off, StoredLen: stored, RawLen: raw}})
	}
	count := func(n uint32, body int) []byte {
		b := binary.LittleEndian.AppendUint32(nil, n)
		return append(b, make([]byte, body)...)
	}
	trailer := func(hl uint32) []byte {
		t := pack.EncodeTrailer(0)
		binary.LittleEndian.PutUint32(t[8:], hl)
		return t
	}
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	meta := func(size int64) []byte {
		m := []byte(`{"id":"x","size":` + strconv.FormatInt(size, 10) + `,"block_size":65536}`)
		return append(uv(uint64(len(m))), m...)
	}
	cases := []struct {
		name   string
		decode func() error
	}{
		{"pack trailer: header length 2^32-1", func() error { _, err := pack.DecodeTrailer(trailer(^uint32(0)), 1<<20); return err }},
		{"pack trailer: header length = pack length", func() error { _, err := pack.DecodeTrailer(trailer(1<<20), 1<<20); return err }},
		{"pack trailer: negative pack length", func() error { _, err := pack.DecodeTrailer(trailer(0), -1); return err }},
		{"pack header: 2^32-1 entries", func() error { _, err := pack.DecodeHeader(count(^uint32(0), 0), 1<<20, maxBlockSize); return err }},
		{"pack header: more entries than bytes", func() error { _, err := pack.DecodeHeader(count(3, pack.EntrySize), 1<<20, maxBlockSize); return err }},
		{"pack header: entries beyond the limit", func() error {
			_, err := pack.DecodeHeader(count(pack.MaxEntries+1, (pack.MaxEntries+1)*pack.EntrySize), 1<<40, maxBlockSize)
			return err
		}},
		{"pack entry: offset 2^62", func() error { _, err := pack.DecodeHeader(entry(1<<62, 1, 1), 1<<20, maxBlockSize); return err }},
		{"pack entry: offset all ones", func() error { _, err := pack.DecodeHeader(entry(^uint64(0), 1, 1), 1<<20, maxBlockSize); return err }},
		{"pack entry: stored length 2^32-1", func() error { _, err := pack.DecodeHeader(entry(0, ^uint32(0), 1), 1<<20, maxBlockSize); return err }},
		{"pack entry: raw length 2^32-1", func() error { _, err := pack.DecodeHeader(entry(0, 1, ^uint32(0)), 1<<20, maxBlockSize); return err }},
		{"manifest: metadata length 2^62", func() error { _, _, err := decodeManifestBody(uv(1<<62), true); return err }},
		{"manifest: metadata length beyond body", func() error { _, _, err := decodeManifestBody(append(uv(100), '{'), true); return err }},
		{"manifest: size 2^62", func() error { _, _, err := decodeManifestBody(meta(1<<62), true); return err }},
		{"manifest: negative size", func() error { _, _, err := decodeManifestBody(meta(-1), true); return err }},
		{"manifest: 2^62 holes", func() error { _, _, err := decodeManifestBody(append(meta(1<<20), uv(1<<62)...), true); return err }},
		{"manifest: 2^62 packs", func() error { _, _, err := decodeManifestBody(append(meta(1<<20), uv(0, 1<<62)...), true); return err }},
		{"manifest: 2^62 chunks", func() error {
			_, _, err := decodeManifestBody(append(meta(1<<20), uv(0, 0, 1<<62)...), true)
			return err
		}},
		{"manifest: chunks beyond body", func() error { _, _, err := decodeManifestBody(append(meta(1<<20), uv(0, 1, 16)...), true); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.decode(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestManifestBomb stores manifests whose few compressed bytes claim a huge
// body: loading one is refused as corrupt, naming the checkpoint, before
// anything near the claimed size is allocated.
func TestManifestBomb(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 2, 1, nil)
	zeros := make([]byte, 1<<20)
	stream := func(size int64) []byte {
		var buf bytes.Buffer
		w, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		if err != nil {
			t.Fatal(err)
		}
		if size >= 0 {
			w.ResetContentSize(&buf, size)
		} else {
			w.Reset(&buf)
		}
		n := max(size, 256<<20)
		for written := int64(0); written < n; written += int64(len(zeros)) {
			if _, err := w.Write(zeros); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	cases := []struct {
		name string
		z    []byte
	}{
		{"256 MiB declared", stream(256 << 20)},
		{"no declared size", stream(-1)},
		{"empty payload", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := newCheckpointID(r.now())
			obj := append([]byte(manifestMagic), manifestVersion, 0, 0, 0)
			obj = append(obj, c.z...)
			if _, err := r.obj.Put(ctx, manifestName(id), obj); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := r.LoadCheckpoint(ctx, id)
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("loading the bomb allocated %d bytes", grew)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), id) {
				t.Fatalf("load: %v, want ErrCorrupt naming %s", err, id)
			}
		})
	}
}
