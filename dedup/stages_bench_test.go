package dedup

// Per-stage cost benchmarks: each measures one step of the backup or restore
// pipeline on one goroutine over a 4 MiB block (a 32 MiB pack for erasure
// coding), so `go test -bench BenchmarkStage -cpu 1` prints the single-core
// MB/s of every stage beside BenchmarkStageMemcpy, the ceiling. Everything
// runs in memory (store.Mem shard stores, no index): setup is kept out of
// the timer, and no stage touches a disk.
//
//	go test -run '^$' -bench BenchmarkStage -cpu 1 -benchtime 20x ./dedup/

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"cairn/dedup/store"
)

const stageBlock = 4 << 20

// stageSink keeps hash results alive so no call is optimised away.
var stageSink uint64

// stageData returns n deterministic bytes, half compressible: 4 KiB pages
// alternate between random bytes and text-like pages (words drawn from a
// small vocabulary, the way logs and configuration files look), so the
// compressor sees the mixed content of a typical volume rather than its
// best or worst case.
func stageData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'c', 'a', 'i', 'r', 'n'}))
	words := []string{
		"the", "block", "backup", "volume", "error", "info", "debug", "user",
		"request", "served", "in", "ms", "status", "200", "404", "GET", "POST",
		"/api/v1/items", "connection", "closed", "by", "peer", "retrying",
		"session", "started", "for", "host", "db01", "cache", "miss", "hit",
		"2024-05-01T12:00:00Z", "kernel:", "eth0", "link", "up", "=", "true",
	}
	b := make([]byte, n)
	const page = 4096
	for p := 0; p < n; p += page {
		pg := b[p:min(p+page, n)]
		if (p/page)%2 == 0 {
			for i := 0; i+8 <= len(pg); i += 8 {
				v := rng.Uint64()
				for j := 0; j < 8; j++ {
					pg[i+j] = byte(v >> (8 * j))
				}
			}
			continue
		}
		i := 0
		for i < len(pg) {
			w := words[rng.IntN(len(words))]
			i += copy(pg[i:], w)
			if i < len(pg) {
				if rng.IntN(12) == 0 {
					pg[i] = '\n'
				} else {
					pg[i] = ' '
				}
				i++
			}
		}
	}
	return b
}

// stageRepo opens a repository over 4+2 in-memory shard stores, without an
// index: what the stages need (keys, sealer, zstd coders, coded) and nothing
// on disk. The argon2 key derivation of an encrypted one runs here, outside
// any timer.
func stageRepo(b *testing.B, encrypted bool) (*Repository, []*store.Mem) {
	b.Helper()
	o := InitOptions{}
	if encrypted {
		o.Password = []byte("bench")
	}
	return memRepository(b, o, "")
}

// memRepository opens a repository over in-memory shard stores (stores
// that are not local directories), with its index in indexDir ("": none).
func memRepository(t testing.TB, o InitOptions, indexDir string) (*Repository, []*store.Mem) {
	t.Helper()
	cfg, _, err := newConfig(o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var mems []*store.Mem
	var stores []store.Store
	for i := 0; i < cfg.DataShards+cfg.ParityShards; i++ {
		m := store.NewMem()
		if err := m.Put(ctx, configName, cb); err != nil {
			t.Fatal(err)
		}
		mems = append(mems, m)
		stores = append(stores, m)
	}
	r, err := openStores(ctx, stores, indexDir, Options{Password: o.Password, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, mems
}

func BenchmarkStageMemcpy(b *testing.B) {
	src := stageData(1, stageBlock)
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		copy(dst, src)
	}
}

func BenchmarkStageHash(b *testing.B) {
	r, _ := stageRepo(b, false)
	data := stageData(1, stageBlock)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var id ChunkID
	for b.Loop() {
		id = r.hash.id(data)
	}
	stageSink = uint64(id[0])
}

func BenchmarkStageXXH3(b *testing.B) {
	data := stageData(1, stageBlock)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var sum uint64
	for b.Loop() {
		sum ^= xxh3.Hash(data)
	}
	stageSink = sum
}

func BenchmarkStageCompress(b *testing.B) {
	r, _ := stageRepo(b, false)
	data := stageData(1, stageBlock)
	dst := make([]byte, 0, len(data))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		dst = r.codec.Compress(dst, data)
	}
	b.ReportMetric(float64(len(data))/float64(len(dst)), "ratio")
}

func BenchmarkStageDecompress(b *testing.B) {
	r, _ := stageRepo(b, false)
	data := stageData(1, stageBlock)
	c := r.codec.Compress(nil, data)
	dst := make([]byte, len(data))
	b.SetBytes(int64(len(data))) // plaintext bytes out
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.codec.Decompress(dst, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStageEncrypt(b *testing.B) {
	r, _ := stageRepo(b, true)
	data := stageData(1, stageBlock)
	id := r.hash.id(data)
	dst := make([]byte, 0, len(data)+r.seal.overhead())
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		dst = r.seal.seal(dst[:0], data, id[:])
	}
}

func BenchmarkStageDecrypt(b *testing.B) {
	r, _ := stageRepo(b, true)
	data := stageData(1, stageBlock)
	id := r.hash.id(data)
	sealed := r.seal.seal(nil, data, id[:])
	dst := make([]byte, 0, len(data))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		var err error
		if dst, err = r.seal.open(dst[:0], sealed, id[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageErasureEncode is erasure.Objects.Encode of a 32 MiB pack at 4+2: the
// Reed–Solomon parity plus building the six shard objects (xxh3 checksum
// tables and copies). MB/s are of pack bytes in.
func BenchmarkStageErasureEncode(b *testing.B) {
	r, _ := stageRepo(b, false)
	if k, m := r.cfg.DataShards, r.cfg.ParityShards; k != 4 || m != 2 {
		b.Fatalf("repository is %d+%d, want 4+2", k, m)
	}
	pack := stageData(2, DefaultPackSize)
	b.SetBytes(int64(len(pack)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.obj.Encode("packs/bench", pack, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageReconstruct reads a 4 MiB range of a 32 MiB 4+2 pack whose
// shards 0 and 1 are lost, through coded.readAt as a restore does: the range
// falls in shard 0, so it is rebuilt from the same range of the four
// surviving shards (read, checksum-verified, Reed–Solomon reconstructed).
func BenchmarkStageReconstruct(b *testing.B) {
	r, mems := stageRepo(b, false)
	ctx := context.Background()
	pack := stageData(3, DefaultPackSize)
	const name = "packs/00/bench"
	if _, err := r.obj.Put(ctx, name, pack); err != nil {
		b.Fatal(err)
	}
	mems[0].Remove(name)
	mems[1].Remove(name)
	const off, n = 1 << 20, stageBlock // inside shard 0 (8 MiB per shard)
	got, err := r.obj.ReadAt(ctx, name, off, n)
	if err != nil {
		b.Fatal(err)
	}
	if string(got) != string(pack[off:off+n]) {
		b.Fatal("reconstructed range differs")
	}
	b.SetBytes(n)
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.obj.ReadAt(ctx, name, off, n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageRead is the same 4 MiB range with every shard present: one
// shard read and checksum-verified, the healthy restore path, for contrast.
func BenchmarkStageRead(b *testing.B) {
	r, _ := stageRepo(b, false)
	ctx := context.Background()
	pack := stageData(3, DefaultPackSize)
	const name = "packs/00/bench"
	if _, err := r.obj.Put(ctx, name, pack); err != nil {
		b.Fatal(err)
	}
	const off, n = 1 << 20, stageBlock
	b.SetBytes(n)
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.obj.ReadAt(ctx, name, off, n); err != nil {
			b.Fatal(err)
		}
	}
}
