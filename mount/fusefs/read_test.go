package fusefs

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestConcurrentRandomReads(t *testing.T) {
	r, _ := newRepo(t)
	data := randomBytes(7, 8*mib+333)
	clear(data[2*mib : 3*mib]) // holes read as zeros too
	cp := backup(t, r, "/a", data)
	s := mount(t, r, Options{})
	path := filepath.Join(s.Dir(), "by-id", cp.ID, "disk.raw")

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			f, err := os.Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 100 {
				off := rng.Int64N(int64(len(data)))
				buf := make([]byte, 1+rng.IntN(300*kib))
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) || (err == nil && n != len(buf)) {
					t.Errorf("reader %d: wrong %d bytes at %d", g, n, off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSequentialReadAhead(t *testing.T) {
	r, _ := newRepo(t)
	data := randomBytes(8, 6*mib+100)
	cp := backup(t, r, "/a", data)
	s := mount(t, r, Options{})
	before := runtime.NumGoroutine()
	for range 3 {
		f, err := os.Open(filepath.Join(s.Dir(), "by-id", cp.ID, "disk.raw"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("sequential read: %v, equal %v", err, bytes.Equal(got, data))
		}
	}
	unmount(t, s)
	// Every read-ahead goroutine ended with its handle or the mount.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after unmount, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestHandleReadAhead drives a handle without the kernel: sequential reads
// start read-ahead of at most readAhead blocks past the read; random reads
// do not; Release ends the goroutines.
func TestHandleReadAhead(t *testing.T) {
	r, _ := newRepo(t)
	data := randomBytes(9, 8*mib)
	cp := backup(t, r, "/a", data)
	rd, err := r.OpenCheckpoint(context.Background(), cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	f := &fsys{life: context.Background(), logf: t.Logf}
	v := &volume{rd: rd, bs: int64(rd.BlockSize())}
	h := newHandle(f, v, window{name: diskFile, size: rd.Size()})
	bs := v.bs

	h.observe(5*mib, 100)
	h.observe(1*mib, 100)
	if h.jobs != nil {
		t.Fatal("random reads started read-ahead")
	}
	for i := range int64(3) {
		buf := make([]byte, bs)
		if _, errno := h.Read(context.Background(), buf, i*bs); errno != 0 {
			t.Fatalf("read: %v", errno)
		}
	}
	if h.jobs == nil {
		t.Fatal("sequential reads did not start read-ahead")
	}
	if h.ahead != 4 {
		t.Fatalf("read ahead to block %d after reading block 2, want 4", h.ahead)
	}
	h.Release(context.Background())
	h.wg.Wait()
	f.wg.Wait()
	h.observe(3*bs, bs) // after release: nothing starts
}
