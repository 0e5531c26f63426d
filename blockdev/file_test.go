package blockdev

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"cairn/blockdev/blockdevtest"
	"cairn/internal/bigbuf"
)

const mib = 1 << 20

type write struct {
	off  int64
	data []byte
}

// makeFile creates a file of size bytes holding only the given writes; the
// rest is hole.
func makeFile(t *testing.T, path string, size int64, writes ...write) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// requireHoles skips tests whose assertions need SEEK_DATA, on filesystems
// that report every file as data.
func requireHoles(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, "probe")
	makeFile(t, path, 8*mib)
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	defer os.Remove(path)
	ext, err := src.Allocated(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 0 {
		t.Skipf("filesystem of %s does not report holes", dir)
	}
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestFileAllocated(t *testing.T) {
	dir := t.TempDir()
	requireHoles(t, dir)

	const sparseSize = 64*mib + 123 // not block aligned, to test the tail
	tests := []struct {
		name   string
		size   int64
		writes []write
		// maxAlloc bounds the total allocated bytes; -1 asks for exactly one
		// extent covering the file.
		maxAlloc int64
	}{
		{name: "empty", size: 0},
		{name: "all hole", size: 16 * mib},
		{name: "dense", size: 3*mib + 7, writes: []write{{0, fill(3*mib+7, 0x11)}}, maxAlloc: -1},
		{
			name: "sparse",
			size: sparseSize,
			writes: []write{
				{0, fill(4096, 0x22)},
				{10*mib + 100, fill(10, 0x33)},
				{40 * mib, fill(mib, 0x44)},
				{sparseSize - 1, []byte{0x55}},
			},
			// Four writes rounded out to filesystem blocks (at most 64 KiB
			// even on filesystems with big allocation units).
			maxAlloc: mib + 4*64<<10,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			makeFile(t, path, tc.size, tc.writes...)
			src, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if src.Size() != tc.size {
				t.Fatalf("Size() = %d, want %d", src.Size(), tc.size)
			}

			ext, err := src.Allocated(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkExtents(t, ext, tc.size)
			if tc.maxAlloc == -1 {
				if len(ext) != 1 || ext[0] != (Extent{Off: 0, Len: tc.size}) {
					t.Fatalf("extents = %v, want one covering [0, %d)", ext, tc.size)
				}
				return
			}
			for _, w := range tc.writes {
				if !covered(ext, Extent{Off: w.off, Len: int64(len(w.data))}) {
					t.Errorf("write at %d+%d not covered by %v", w.off, len(w.data), ext)
				}
			}
			if total := totalLen(ext); total > tc.maxAlloc {
				t.Errorf("allocated %d bytes, want at most %d: %v", total, tc.maxAlloc, ext)
			}
		})
	}
}

// checkExtents asserts the Source contract: sorted, inside the volume,
// non-empty, neither overlapping nor touching (touching ones are merged).
func checkExtents(t *testing.T, ext []Extent, size int64) {
	t.Helper()
	for i, e := range ext {
		if e.Len <= 0 || e.Off < 0 || e.End() > size {
			t.Fatalf("extent %d %v outside [0, %d)", i, e, size)
		}
		if i > 0 && e.Off <= ext[i-1].End() {
			t.Fatalf("extent %d %v not after %v", i, e, ext[i-1])
		}
	}
}

func covered(ext []Extent, r Extent) bool {
	for _, e := range ext {
		if e.Off <= r.Off && r.End() <= e.End() {
			return true
		}
	}
	return false
}

func totalLen(ext []Extent) (n int64) {
	for _, e := range ext {
		n += e.Len
	}
	return n
}

func TestFileAllocatedCanceled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	makeFile(t, path, mib, write{0, fill(10, 1)})
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Allocated(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allocated with canceled ctx: err = %v, want context.Canceled", err)
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	makeFile(t, "rel.img", 4096)

	src, err := OpenFile("rel.img")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if want := filepath.Join(dir, "rel.img"); src.Name() != want {
		t.Errorf("Name() = %q, want %q", src.Name(), want)
	}

	if _, err := OpenFile(dir); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("OpenFile(dir): err = %v, want ErrUnsupportedType", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenFile(missing): err = %v, want ErrNotExist", err)
	}
}

// openRandomFile writes size random bytes to a file in a temporary
// directory and opens it as a source, closed when the test ends.
func openRandomFile(t *testing.T, size int, seed uint64) (src *File, path string, data []byte) {
	t.Helper()
	data = make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path = filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, path, data
}

func TestFileReadAtConcurrent(t *testing.T) {
	src, _, want := openRandomFile(t, 4*mib, 1)
	blockdevtest.ConcurrentReads(t, src, want, 16, 200, 64<<10)
}

func TestAlignExtents(t *testing.T) {
	const bs = 4096
	tests := []struct {
		name string
		in   []Extent
		size int64
		want []Extent
	}{
		{name: "nil", in: nil, size: 10 * bs, want: nil},
		{name: "aligned", in: []Extent{{Off: bs, Len: bs}}, size: 10 * bs, want: []Extent{{Off: bs, Len: bs}}},
		{name: "widened both ways", in: []Extent{{Off: bs + 1, Len: 10}}, size: 10 * bs, want: []Extent{{Off: bs, Len: bs}}},
		{name: "straddles a boundary", in: []Extent{{Off: bs - 1, Len: 2}}, size: 10 * bs, want: []Extent{{Off: 0, Len: 2 * bs}}},
		{
			name: "merged when sharing a block",
			in:   []Extent{{Off: 10, Len: 10}, {Off: bs - 10, Len: 5}},
			size: 10 * bs,
			want: []Extent{{Off: 0, Len: bs}},
		},
		{
			name: "merged when adjacent after widening",
			in:   []Extent{{Off: 10, Len: 10}, {Off: bs + 10, Len: 10}, {Off: 5 * bs, Len: 1}},
			size: 10 * bs,
			want: []Extent{{Off: 0, Len: 2 * bs}, {Off: 5 * bs, Len: bs}},
		},
		{
			name: "unsorted input",
			in:   []Extent{{Off: 5 * bs, Len: 1}, {Off: 0, Len: 1}},
			size: 10 * bs,
			want: []Extent{{Off: 0, Len: bs}, {Off: 5 * bs, Len: bs}},
		},
		{
			name: "clamped at unaligned size",
			in:   []Extent{{Off: 2*bs + 5, Len: 10}},
			size: 2*bs + 100,
			want: []Extent{{Off: 2 * bs, Len: 100}},
		},
		{
			name: "past size dropped, straddling clamped",
			in:   []Extent{{Off: bs, Len: 3 * bs}, {Off: 5 * bs, Len: bs}},
			size: 2*bs + 1,
			want: []Extent{{Off: bs, Len: bs + 1}},
		},
		{name: "empty extents dropped", in: []Extent{{Off: bs, Len: 0}}, size: 10 * bs, want: nil},
		{name: "zero size", in: []Extent{{Off: 0, Len: bs}}, size: 0, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]Extent(nil), tc.in...)
			got := AlignExtents(tc.in, bs, tc.size)
			if !slices.Equal(got, tc.want) {
				t.Errorf("AlignExtents(%v, %d, %d) = %v, want %v", tc.in, bs, tc.size, got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("input modified: %v, was %v", tc.in, in)
			}
		})
	}
}

// TestFileReadAtDirect: aligned reads into aligned buffers go around the
// page cache where the file system allows it, and still see what was
// written through it a moment before (the kernel flushes the range first);
// unaligned ones and the unaligned tail read through the page cache.
func TestFileReadAtDirect(t *testing.T) {
	src, path, want := openRandomFile(t, 2*mib+1000, 3)
	if src.direct == nil {
		t.Log("O_DIRECT refused here: every read goes through the page cache")
	}
	// Dirty pages the direct read must not miss.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(want[mib:], "written through the page cache")
	if _, err := f.WriteAt(want[mib:mib+64], mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	buf := bigbuf.Make(2 * mib) // aligned on a huge page
	for _, c := range []struct{ off, n int64 }{
		{0, mib}, {mib, mib}, {4096, 8192}, // aligned: direct
		{1, 4096}, {mib + 7, 100}, // unaligned: page cache
		{2 * mib, 1000}, // the tail
	} {
		p := buf[:c.n]
		n, err := src.ReadAt(p, c.off)
		if err != nil || int64(n) != c.n {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", c.n, c.off, n, err)
		}
		if !bytes.Equal(p, want[c.off:c.off+c.n]) {
			t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", c.n, c.off)
		}
	}
	if n, err := src.ReadAt(buf[:mib], 2*mib); n != 1000 || err == nil {
		t.Fatalf("ReadAt past the end = %d, %v; want 1000 and an error", n, err)
	}
}
