package dedup

import (
	"bytes"
	"context"
	"testing"
)

// TestWarmHeaders: after WarmHeaders every pack the checkpoint names has
// its header decoded in the cache, so first reads of its chunks need no
// header reads.
func TestWarmHeaders(t *testing.T) {
	r := testRepository(t)
	ctx := context.Background()
	cp := backup(t, r, randomData(41, 40<<16))
	dropHeaderCaches(r)
	rd, err := r.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.bm.Packs) < 2 {
		t.Fatalf("the checkpoint names %d packs; the test needs several", len(rd.bm.Packs))
	}
	rd.WarmHeaders(ctx)
	for _, p := range rd.bm.Packs {
		if _, ok := r.headers.Get(p); !ok {
			t.Errorf("pack %s: header not cached after WarmHeaders", p)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	dropHeaderCaches(r)
	rd.WarmHeaders(canceled) // returns at once, reading nothing
	for _, p := range rd.bm.Packs {
		if _, ok := r.headers.Get(p); ok {
			t.Errorf("pack %s: header read by a canceled WarmHeaders", p)
		}
	}
}

// TestReaderLoadsWholeOnlyOnWarm: reads decode only the frames they cover,
// however sequential, and never load a chunk whole into the chunk cache
// unless such a load is running. Warm (FUSE read-ahead) does, where the
// stores are not local directories, and reads of that chunk are then served
// from the cache; on local ones it leaves reading ahead to the kernel.
func TestReaderLoadsWholeOnlyOnWarm(t *testing.T) {
	const bs = 64 << 10
	ctx := context.Background()
	data := randomData(42, 16*bs)
	local := testRepository(t)
	remote, mems := memRepository(t, InitOptions{BlockSize: bs, PackSize: 1 << 20}, t.TempDir())
	for _, tc := range []struct {
		name string
		r    *Repository
		warm bool
	}{{"local", local, false}, {"remote", remote, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			cp := backup(t, r, data)
			rd, err := r.OpenCheckpoint(ctx, cp.ID)
			if err != nil {
				t.Fatal(err)
			}
			read := func(off, n int64) error {
				p := make([]byte, n)
				if _, err := rd.ReadAtContext(ctx, p, off); err != nil {
					return err
				}
				if !bytes.Equal(p, data[off:off+n]) {
					t.Fatalf("[%d, %d): wrong bytes", off, off+n)
				}
				return nil
			}
			for off := int64(0); off < 8*bs; off += 4096 {
				if err := read(off, 4096); err != nil {
					t.Fatal(err)
				}
			}
			for off := int64(8 * bs); off < 16*bs; off += bs {
				if err := read(off, bs); err != nil {
					t.Fatal(err)
				}
			}
			for b := int64(0); b < 16; b++ {
				if ref, _ := rd.bm.Lookup(b); r.chunks.has(ref.ID) {
					t.Fatalf("block %d: a sequential read loaded its chunk whole", b)
				}
			}
			// A read of a chunk that is being loaded whole waits for
			// that load.
			ref, _ := rd.bm.Lookup(5)
			key := chunkPlace{rd.bm.Packs[ref.Pack], ref.ID}
			r.fetching.Store(key, struct{}{})
			if err := read(5*bs+100, 4096); err != nil {
				t.Fatal(err)
			}
			r.fetching.Delete(key)
			if !r.chunks.has(ref.ID) {
				t.Fatal("a read of a chunk being loaded whole decoded its frames instead")
			}
			rd.Warm(ctx, 3*bs)
			ref, _ = rd.bm.Lookup(3)
			if got := r.chunks.has(ref.ID); got != tc.warm {
				t.Fatalf("after Warm, chunk cached whole = %v, want %v", got, tc.warm)
			}
			if !tc.warm {
				return
			}
			for _, m := range mems {
				var names []string
				_ = m.List(ctx, "packs/", func(name string, _ int64) error { names = append(names, name); return nil })
				for _, n := range names {
					if err := m.Delete(ctx, n); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := read(3*bs+100, bs-200); err != nil {
				t.Fatalf("a read of a warmed chunk went to the stores: %v", err)
			}
			if err := read(10*bs, bs); err == nil {
				t.Fatal("a chunk never warmed was read with its packs gone")
			}
		})
	}
}
