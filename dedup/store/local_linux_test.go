package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"cairn/dedup/store"
)

// TestLocalScatteredReadsNoMore: reads marked Scattered bring into the
// page cache only the pages they ask for; unmarked ones are left to the
// kernel's read-ahead (logged, since that depends on the disk's settings).
func TestLocalScatteredReadsNoMore(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir, store.LocalOptions{})
	defer l.Close()
	const size = 8 << 20
	data := bytes.Repeat([]byte("scattered"), size/9+1)[:size]
	ctx := context.Background()
	if err := l.Put(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	resident := func() int {
		vec := make([]byte, size/os.Getpagesize())
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			t.Fatal(errno)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	drop := func() {
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		if n := resident(); n > 0 {
			t.Skipf("%d pages of the file stay cached after FADV_DONTNEED (a file system in memory?): nothing to measure", n)
		}
	}
	// Two reads as a random read of a frame makes them: its chunk's frame
	// table, then a frame after it. The kernel takes the second, next to
	// cached pages, for a sequential reader's.
	read := func(ctx context.Context) int {
		drop()
		for _, r := range []struct{ off, n int64 }{{1<<20 - 64<<10, 64 << 10}, {1 << 20, 4096}} {
			p := make([]byte, r.n)
			if err := l.ReadAt(ctx, "obj", p, r.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, data[r.off:r.off+r.n]) {
				t.Fatal("wrong bytes")
			}
		}
		return resident()
	}
	t.Logf("unmarked reads of 64 KiB and 4 KiB brought in %d pages", read(ctx))
	if n := read(store.Scattered(ctx)); n != 17 {
		t.Fatalf("Scattered reads of 64 KiB and 4 KiB brought in %d pages, want 17", n)
	}
}
