// Package blockdevtest holds checks shared by the tests of block sources.
package blockdevtest

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// ConcurrentReads runs readers goroutines at once, each making reads
// random ReadAt calls of bufSize bytes, and checks every result against
// want (the source's whole content). Under -race it also shows that the
// source is safe for concurrent use, which the backup's workers rely on.
func ConcurrentReads(t testing.TB, src io.ReaderAt, want []byte, readers, reads, bufSize int) {
	t.Helper()
	size := int64(len(want))
	var wg sync.WaitGroup
	for g := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			buf := make([]byte, bufSize)
			for range reads {
				off := rng.Int64N(size - int64(len(buf)))
				if _, err := src.ReadAt(buf, off); err != nil {
					t.Errorf("ReadAt(%d): %v", off, err)
					return
				}
				if !bytes.Equal(buf, want[off:off+int64(len(buf))]) {
					t.Errorf("ReadAt(%d): wrong data", off)
					return
				}
			}
		})
	}
	wg.Wait()
}
