package dedup

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestSharedBuffersUnderEviction reads one checkpoint from many goroutines
// through caches a few chunks and frames large, so that decoded buffers
// leave the caches, go back to their pools and are decoded into again
// while other readers still copy out of them, had a reference gone
// missing. Every read must return the volume's bytes.
func TestSharedBuffersUnderEviction(t *testing.T) {
	const bs = 256 << 10
	data := append(randomData(31, 12*bs), bytes.Repeat([]byte("compressible "), 12*bs/13)...)
	for _, enc := range []bool{false, true} {
		o := InitOptions{BlockSize: bs, PackSize: 1 << 20}
		if enc {
			o.Password = []byte("secret")
		}
		dir := t.TempDir()
		w, err := Init(context.Background(), dir, o, nil, Options{NoSync: true, Password: o.Password, FrameSize: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		cp, err := w.Backup(context.Background(), newMemSource("v", data), BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// Three chunks and a few frames: nearly every read evicts.
		r, err := Open(context.Background(), dir, Options{NoSync: true, Password: o.Password, CacheBytes: 3 * bs * 8 / 7})
		if err != nil {
			t.Fatal(err)
		}
		rd, err := r.OpenCheckpoint(context.Background(), cp.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for range 300 {
					var n int
					switch rng.IntN(3) {
					case 0:
						n = 1 + rng.IntN(8<<10) // a frame or two
					case 1:
						n = bs // a block: the chunk cache
					default:
						n = 1 + rng.IntN(3*bs)
					}
					off := rng.Int64N(int64(len(data) - n))
					if rng.IntN(2) == 0 { // whole blocks, read in sequence, go through the chunk cache
						off -= off % bs
					}
					p := make([]byte, n)
					if _, err := rd.ReadAtContext(context.Background(), p, off); err != nil {
						errs <- err.Error()
						return
					}
					if !bytes.Equal(p, data[off:off+int64(n)]) {
						errs <- "wrong bytes"
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("encrypted=%v: %s", enc, e)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
