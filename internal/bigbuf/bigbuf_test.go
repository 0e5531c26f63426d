package bigbuf

import (
	"runtime"
	"testing"
	"unsafe"
)

func TestMake(t *testing.T) {
	for _, n := range []int{0, 1, hugePage - 1, hugePage, hugePage + 4096, 4 << 20, 9<<20 + 123} {
		b := Make(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Make(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i, c := range b {
			if c != 0 {
				t.Fatalf("Make(%d): byte %d is %d, want zero", n, i, c)
			}
		}
		if n >= hugePage && runtime.GOOS == "linux" {
			if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%hugePage != 0 {
				t.Errorf("Make(%d) starts at %#x, not on a huge-page boundary", n, p)
			}
		}
	}
}

func TestPool(t *testing.T) {
	p := NewPool(1)
	b := p.Get(1 << 20)
	b[0] = 7
	p.Put(b)
	p.Put(Make(10)) // beyond the pool's bound: dropped
	if c := p.Get(1 << 19); len(c) != 1<<19 || &c[0] != &b[0] {
		t.Fatalf("Get after Put did not reuse the buffer")
	}
	if c := p.Get(2 << 20); len(c) != 2<<20 {
		t.Fatalf("Get(2 MiB) from an empty pool: len %d", len(c))
	}
	var nilPool *Pool
	nilPool.Put(b)
	if c := nilPool.Get(5); len(c) != 5 {
		t.Fatalf("nil pool Get: len %d", len(c))
	}
}

func TestSlabPool(t *testing.T) {
	const piece = 128<<10 + 64
	p := NewSlabPool(4, piece)
	var got [][]byte
	for range 40 { // more than one slab
		b := p.Get(piece - 100)
		if len(b) != piece-100 || cap(b) != piece {
			t.Fatalf("slab piece: len %d cap %d", len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatal("a new piece is not zeroed")
			}
		}
		for i := range b {
			b[i] = byte(len(got)) // pieces must not overlap
		}
		got = append(got, b)
	}
	for i, b := range got {
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("piece %d was written through another piece", i)
			}
		}
	}
	if b := p.Get(piece + 1); len(b) != piece+1 {
		t.Fatalf("a buffer larger than a piece: len %d", len(b))
	}
}

// TestPoolHeadroom: a pool's new buffers have room for a quarter more, so
// that a slightly larger request later (the shards of a pack whose last
// blob was larger) reuses one instead of dropping it for a fresh one.
func TestPoolHeadroom(t *testing.T) {
	p := NewPool(2)
	const n = 4 << 20
	b := p.Get(n)
	if len(b) != n || cap(b) < n+n/4 {
		t.Fatalf("Get(%d): len %d cap %d, want room for %d", n, len(b), cap(b), n+n/4)
	}
	p.Put(b)
	if c := p.Get(n + n/8); &c[0] != &b[0] {
		t.Fatal("a slightly larger request did not reuse the pooled buffer")
	}
}
