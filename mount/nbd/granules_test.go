package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The rig's volume: six granules of rigGran bytes, the last one short,
// laid out data, hole, data, data, hole, data.
const (
	rigGran = 8 << 10
	rigSize = 5*rigGran + 3000
)

func rigSource() []byte {
	b := make([]byte, rigSize)
	for g := range int64(6) {
		if g == 1 || g == 4 {
			continue
		}
		for i := g * rigGran; i < min((g+1)*rigGran, rigSize); i++ {
			b[i] = byte(i*13 + 1)
		}
	}
	return b
}

// granuleRig is a granuleFile over rigSource in a temporary directory
// that counts its fills.
type granuleRig struct {
	gf     *granuleFile
	vol    *memVolume
	mu     sync.Mutex
	filled map[int64]int
}

func newRig(t *testing.T, k *granuleKind, dir string) *granuleRig {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(rigSize); err != nil {
		t.Fatal(err)
	}
	r := &granuleRig{vol: &memVolume{data: rigSource()}, filled: map[int64]int{}}
	r.gf = newGranuleFile(k, f, VolumeDevice(r.vol), rigGran, filepath.Join(dir, "bitmap"), "cp", r.fill)
	return r
}

func (r *granuleRig) fill(ctx context.Context, g int64) error {
	gs, ge := r.gf.granule(g)
	buf := make([]byte, ge-gs)
	if err := r.gf.src.ReadAt(ctx, buf, gs); err != nil {
		return err
	}
	if _, err := r.gf.f.WriteAt(buf, gs); err != nil {
		return err
	}
	r.mu.Lock()
	r.filled[g]++
	r.mu.Unlock()
	return nil
}

func (r *granuleRig) presentGranules() []int64 {
	var out []int64
	for g := range r.gf.granules() {
		if r.gf.has(g) {
			out = append(out, g)
		}
	}
	return out
}

// wantPresentBytes is the size of granules gs.
func wantPresentBytes(gs []int64) int64 {
	n := int64(0)
	for _, g := range gs {
		n += min((g+1)*rigGran, rigSize) - g*rigGran
	}
	return n
}

var rigKinds = []struct {
	name string
	kind *granuleKind
}{{"overlay", &overlayKind}, {"live", &liveKind}}

func TestGranuleFileWrite(t *testing.T) {
	const G = rigGran
	cases := []struct {
		name    string
		present []int64 // before the write
		off, n  int64
		filled  []int64 // granules the write must fill first
	}{
		{"inside one granule", nil, 100, 50, []int64{0}},
		{"across a boundary", nil, G - 10, 20, []int64{0, 1}},
		{"unaligned over whole granules", nil, G + 1, 3 * G, []int64{1, 4}},
		{"aligned whole granules", nil, G, 2 * G, nil},
		{"into present granules", []int64{0, 1}, 10, G, nil},
		{"present between absent", []int64{1}, G / 2, 2 * G, []int64{0, 2}},
		{"absent between present", []int64{0, 2}, G - 1, G + 2, nil},
		{"short last granule whole", nil, 5 * G, 3000, nil},
		{"short last granule part", nil, 5*G + 1, 100, []int64{5}},
		{"unaligned to the end", nil, 4*G + 5, rigSize - 4*G - 5, []int64{4}},
		{"everything", nil, 0, rigSize, nil},
		{"empty", nil, 7, 0, nil},
	}
	ctx := context.Background()
	for _, k := range rigKinds {
		for _, op := range []string{"write", "zero"} {
			for _, c := range cases {
				t.Run(k.name+"/"+op+"/"+c.name, func(t *testing.T) {
					r := newRig(t, k.kind, t.TempDir())
					for _, g := range c.present {
						if err := r.gf.ensure(ctx, g); err != nil {
							t.Fatal(err)
						}
					}
					clear(r.filled)
					want := rigSource()
					if op == "write" {
						p := bytes.Repeat([]byte{0xee}, int(c.n))
						if err := r.gf.writeAt(ctx, p, c.off); err != nil {
							t.Fatal(err)
						}
						copy(want[c.off:], p)
					} else {
						if err := r.gf.zero(ctx, c.off, c.n, true); err != nil {
							t.Fatal(err)
						}
						clear(want[c.off : c.off+c.n])
					}
					got := make([]byte, rigSize)
					if err := r.gf.readAt(ctx, got, 0); err != nil {
						t.Fatal(err)
					}
					if i := firstDiff(got, want); i >= 0 {
						t.Fatalf("byte %d reads %#x, want %#x", i, got[i], want[i])
					}
					var filled []int64
					for g, n := range r.filled {
						if n != 1 {
							t.Errorf("granule %d filled %d times", g, n)
						}
						filled = append(filled, g)
					}
					slices.Sort(filled)
					if !slices.Equal(filled, c.filled) {
						t.Errorf("filled granules %v, want %v", filled, c.filled)
					}
					present := slices.Clone(c.present)
					for g := c.off / G; c.n > 0 && g <= (c.off+c.n-1)/G; g++ {
						present = append(present, g)
					}
					slices.Sort(present)
					present = slices.Compact(present)
					if got := r.presentGranules(); !slices.Equal(got, present) {
						t.Errorf("present granules %v, want %v", got, present)
					}
					if got, want := r.gf.presentBytes(), wantPresentBytes(present); got != want {
						t.Errorf("present bytes %d, want %d", got, want)
					}
				})
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestGranuleFileWriteRange(t *testing.T) {
	for _, k := range rigKinds {
		r := newRig(t, k.kind, t.TempDir())
		for _, c := range []struct{ off, n int64 }{{-1, 1}, {rigSize, 1}, {0, -1}, {rigSize - 1, 2}} {
			err := r.gf.zero(context.Background(), c.off, c.n, false)
			if !errors.Is(err, unix.ENOSPC) || !strings.HasPrefix(err.Error(), k.kind.rangeName+" range ") {
				t.Errorf("%s: write of %d+%d: %v, want ENOSPC", k.name, c.off, c.n, err)
			}
		}
	}
}

func TestGranuleFileExtents(t *testing.T) {
	const G = rigGran
	data := func(n int64) Extent { return Extent{Length: n} }
	hole := func(n int64) Extent { return Extent{Length: n, Hole: true} }
	cases := []struct {
		name    string
		written []int64 // granules written with data
		zeroed  []int64 // granules punched out
		off, n  int64
		max     int
		want    []Extent
	}{
		{"all from the source", nil, nil, 0, rigSize, 100,
			[]Extent{data(G), hole(G), data(2 * G), hole(G), data(3000)}},
		{"all from the file", nil, []int64{0, 1, 2, 3, 4, 5}, 0, rigSize, 100,
			[]Extent{hole(rigSize)}},
		{"mixed runs", []int64{1}, []int64{2}, 0, rigSize, 100,
			[]Extent{data(2 * G), hole(G), data(G), hole(G), data(3000)}},
		{"unaligned range", []int64{1}, []int64{2}, G / 2, 3 * G, 100,
			[]Extent{data(G/2 + G), hole(G), data(G / 2)}},
		{"capped", nil, nil, 0, rigSize, 2,
			[]Extent{data(G), hole(G)}},
		{"hole across the kinds", nil, []int64{5}, 5*G - 100, 3100, 100,
			[]Extent{hole(3100)}},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, &overlayKind, t.TempDir())
			for _, g := range c.written {
				gs, ge := r.gf.granule(g)
				if err := r.gf.writeAt(ctx, bytes.Repeat([]byte{1}, int(ge-gs)), gs); err != nil {
					t.Fatal(err)
				}
			}
			for _, g := range c.zeroed {
				gs, ge := r.gf.granule(g)
				if err := r.gf.zero(ctx, gs, ge-gs, true); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.gf.extents(c.off, c.n, c.max)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("extents %v, want %v", got, c.want)
			}
		})
	}
}

// TestGranuleFilePersist saves a bitmap of each kind, reads it back and
// loads it into a fresh granule file.
func TestGranuleFilePersist(t *testing.T) {
	ctx := context.Background()
	for _, k := range rigKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newRig(t, k.kind, dir)
			if err := r.gf.flush(nil); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(r.gf.path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a clean flush saved the bitmap: %v", err)
			}
			if err := r.gf.writeAt(ctx, []byte("x"), 2*rigGran+5); err != nil {
				t.Fatal(err)
			}
			if err := r.gf.zero(ctx, 5*rigGran, 3000, true); err != nil {
				t.Fatal(err)
			}
			extra := []uint64{42}[:k.kind.extra]
			if err := r.gf.flush(func() []uint64 { return extra }); err != nil {
				t.Fatal(err)
			}
			s, err := k.kind.read(r.gf.path)
			if err != nil {
				t.Fatal(err)
			}
			if s.id != "cp" || s.gran != rigGran || s.size != rigSize || !slices.Equal(s.extra, extra) || !slices.Equal(s.words, []uint64{1<<2 | 1<<5}) {
				t.Fatalf("read back %+v", s)
			}

			r2 := newRig(t, k.kind, t.TempDir())
			r2.gf.load(s.words)
			if got := r2.presentGranules(); !slices.Equal(got, []int64{2, 5}) {
				t.Fatalf("loaded granules %v, want [2 5]", got)
			}
			if got, want := r2.gf.presentBytes(), int64(rigGran+3000); got != want {
				t.Fatalf("loaded %d present bytes, want %d", got, want)
			}

			// Only a change makes the next flush save again.
			if err := os.Remove(r.gf.path); err != nil {
				t.Fatal(err)
			}
			if err := r.gf.flush(nil); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(r.gf.path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a flush without changes saved the bitmap: %v", err)
			}
			if err := r.gf.writeAt(ctx, []byte("y"), 3); err != nil {
				t.Fatal(err)
			}
			if err := r.gf.flush(nil); err != nil {
				t.Fatal(err)
			}
			if s, err := k.kind.read(r.gf.path); err != nil || s.words[0] != 1|1<<2|1<<5 {
				t.Fatalf("after a write: %+v, %v", s, err)
			}
			if err := r.gf.remove(); err != nil {
				t.Fatal(err)
			}
			if s, err := k.kind.read(r.gf.path); s != nil || err != nil {
				t.Fatalf("read after remove: %+v, %v", s, err)
			}
		})
	}
}

// resum replaces the checksum of a saved bitmap after a change.
func resum(b []byte) []byte {
	body := b[:len(b)-4]
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

func TestGranuleKindDecodeDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(k *granuleKind, b []byte) []byte
		want   string
	}{
		{"truncated", func(k *granuleKind, b []byte) []byte { return b[:10] }, "not " + "%s"},
		{"magic", func(k *granuleKind, b []byte) []byte { b[0] ^= 1; return b }, "not %s"},
		{"a word", func(k *granuleKind, b []byte) []byte { b[len(b)-9] ^= 1; return b }, "checksum mismatch"},
		{"version", func(k *granuleKind, b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(k.magic):], 2)
			return resum(b)
		}, "version 2"},
		{"granule", func(k *granuleKind, b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(k.magic)+4:], 0)
			return resum(b)
		}, "bad header"},
		{"bitmap length", func(k *granuleKind, b []byte) []byte {
			return resum(append(b[:len(b)-4:len(b)-4], make([]byte, 8+4)...))
		}, "bitmap length"},
	}
	for _, k := range rigKinds {
		good := k.kind.encode(&savedBitmap{id: "cp", gran: rigGran, size: rigSize, words: []uint64{5}})
		for _, c := range cases {
			b := c.damage(k.kind, slices.Clone(good))
			_, err := k.kind.decode("P", b)
			want := k.kind.state + " P: " + strings.ReplaceAll(c.want, "%s", k.kind.kind)
			if !errors.Is(err, k.kind.invalid) || !strings.HasPrefix(err.Error(), want+": ") {
				t.Errorf("%s, damaged %s: %v, want %q", k.name, c.name, err, want)
			}
		}
		if s, err := k.kind.read(filepath.Join(t.TempDir(), "missing")); s != nil || err != nil {
			t.Errorf("%s: missing file read as %+v, %v", k.name, s, err)
		}
	}
}

// Bitmaps saved by the code before granuleFile, for overlayBase: the
// overlay of checkpoint "cp" owning granules 1 and 16 (the short last
// one), and the live restore of "cp1" with granules 0 and 16 hydrated
// after 7 writes.
const (
	goldenOverlayBitmap = "434149524e4f564c000000010001000000000000001013880002637002000100000000003224be95"
	goldenLiveState     = "434149524e4c495600000001000100000000000000101388000000000000000700036370310100010000000000cfaf3743"
)

func golden(t *testing.T, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGranuleKindGoldenEncoding(t *testing.T) {
	size := int64(len(overlayBase().data))
	if got, want := overlayKind.encode(&savedBitmap{id: "cp", gran: Granularity, size: size, words: []uint64{1<<1 | 1<<16}}),
		golden(t, goldenOverlayBitmap); !bytes.Equal(got, want) {
		t.Errorf("overlay bitmap encoding changed:\n%x\n%x", got, want)
	}
	if got, want := liveKind.encode(&savedBitmap{id: "cp1", gran: Granularity, size: size, extra: []uint64{7}, words: []uint64{1<<0 | 1<<16}}),
		golden(t, goldenLiveState); !bytes.Equal(got, want) {
		t.Errorf("live restore state encoding changed:\n%x\n%x", got, want)
	}
}

// TestOverlayGoldenBitmap opens an overlay whose bitmap the code before
// granuleFile saved: its owned granules come from the overlay file.
func TestOverlayGoldenBitmap(t *testing.T) {
	dir := t.TempDir()
	base := overlayBase()
	size := int64(len(base.data))
	file := bytes.Repeat([]byte{0x5a}, int(size))
	if err := os.WriteFile(dataPath(dir, "cp"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	last := (size - 1) / Granularity
	if err := os.WriteFile(mapPath(dir, "cp"), golden(t, goldenOverlayBitmap), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOverlay(dir, "cp", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	want := slices.Clone(base.data)
	copy(want[Granularity:2*Granularity], file)
	copy(want[last*Granularity:], file)
	checkDevice(t, o, want)

	// A bitmap of another checkpoint is refused.
	if err := os.WriteFile(mapPath(dir, "cp2"), golden(t, goldenOverlayBitmap), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOverlay(dir, "cp2", VolumeDevice(base)); !errors.Is(err, ErrOverlayMismatch) || !strings.Contains(err.Error(), "made for another checkpoint") {
		t.Fatalf("a bitmap of another checkpoint: %v", err)
	}
}

// TestLiveGoldenState resumes a live restore whose state the code before
// granuleFile saved.
func TestLiveGoldenState(t *testing.T) {
	ctx := context.Background()
	vol := overlayBase()
	size := int64(len(vol.data))
	path := filepath.Join(t.TempDir(), "target.img")
	target := bytes.Repeat([]byte{0x5a}, int(size))
	if err := os.WriteFile(path, target, 0o600); err != nil {
		t.Fatal(err)
	}
	gran := liveGranule(vol.BlockSize())
	last := (size - 1) / gran
	if err := os.WriteFile(path+LiveStateSuffix, golden(t, goldenLiveState), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenLive(ctx, path, "cp1", vol, LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := d.Stats()
	if want := gran + size - last*gran; !st.Resumed || st.Writes != 7 || st.Hydrated != want {
		t.Fatalf("resumed with %+v, want 7 writes and %d bytes hydrated", st, want)
	}
	want := slices.Clone(vol.data)
	copy(want[:gran], target)
	copy(want[last*gran:], target)
	checkDevice(t, d, want)
}

// TestGranuleFileFillRace races fills with writes covering whole granules:
// in a kind whose granules are filled concurrently no fill may land over
// a write.
func TestGranuleFileFillRace(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, &liveKind, t.TempDir())
	r.vol.delay = time.Millisecond
	p := bytes.Repeat([]byte{0xee}, rigGran)
	var wg sync.WaitGroup
	for g := range int64(5) {
		wg.Go(func() {
			if err := r.gf.ensure(ctx, g); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(g) * 300 * time.Microsecond)
			if err := r.gf.writeAt(ctx, p, g*rigGran); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := make([]byte, 5*rigGran)
	if _, err := r.gf.f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, bytes.Repeat([]byte{0xee}, len(got))); i >= 0 {
		t.Fatalf("a fill overwrote the write at %d", i)
	}
}
