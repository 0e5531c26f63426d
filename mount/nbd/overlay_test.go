package nbd

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
)

// overlayBase is a volume whose size is not a multiple of the granularity.
func overlayBase() *memVolume {
	return &memVolume{data: append(testImage(), bytes.Repeat([]byte{9}, 5000)...)}
}

func checkDevice(t *testing.T, d Device, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if err := d.ReadAt(context.Background(), got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("device differs from the model at %d", i)
	}
	ext, err := d.Extents(0, int64(len(want)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	for _, e := range ext {
		if e.Hole && slices.ContainsFunc(want[pos:pos+e.Length], func(b byte) bool { return b != 0 }) {
			t.Fatalf("extent at %d+%d is a hole but holds data", pos, e.Length)
		}
		pos += e.Length
	}
	if pos != int64(len(want)) {
		t.Fatalf("extents cover %d bytes, want %d", pos, len(want))
	}
}

func TestOverlay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := overlayBase()
	orig := slices.Clone(base.data)
	model := slices.Clone(base.data)
	size := int64(len(model))

	o, err := OpenOverlay(dir, "cp1", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		off := rng.Int64N(size)
		n := min(rng.Int64N(3*Granularity)+1, size-off)
		switch rng.IntN(4) {
		case 0, 1:
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(rng.IntN(255) + 1)
			}
			if err := o.WriteAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
		default:
			if err := o.Zero(ctx, off, n, rng.IntN(2) == 0); err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+n])
		}
		if i%50 == 0 {
			checkDevice(t, o, model)
		}
	}
	checkDevice(t, o, model)
	if err := o.WriteAt(ctx, []byte{1}, size); err == nil {
		t.Fatal("write past the end succeeded")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(base.data, orig) {
		t.Fatal("the overlay wrote to its base")
	}

	// A restart finds the writes.
	o, err = OpenOverlay(dir, "cp1", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	checkDevice(t, o, model)

	// Unflushed writes may be lost, flushed ones may not.
	if err := o.WriteAt(ctx, []byte("flushed"), 0); err != nil {
		t.Fatal(err)
	}
	copy(model, "flushed")
	if err := o.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := o.WriteAt(ctx, []byte("lost"), 3*Granularity+10); err != nil {
		t.Fatal(err)
	}
	o.gf.f.Close() // a crash: no final flush
	o, err = OpenOverlay(dir, "cp1", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	o.ReadAt(ctx, got, 0)
	if string(got) != "flushed" {
		t.Fatalf("flushed write lost: %q", got)
	}
	o.Close()
}

func TestOverlayConcurrentPartialWrites(t *testing.T) {
	ctx := context.Background()
	base := overlayBase()
	o, err := OpenOverlay(t.TempDir(), "cp", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	model := slices.Clone(base.data)
	var wg sync.WaitGroup
	// 16 writers share each granule: a lost copy-on-write would drop one.
	for w := range 16 {
		p := bytes.Repeat([]byte{byte(0x10 + w)}, 4096)
		for g := int64(0); g < 8; g++ {
			copy(model[g*Granularity+int64(w)*4096:], p)
		}
		wg.Go(func() {
			for g := int64(0); g < 8; g++ {
				if err := o.WriteAt(ctx, p, g*Granularity+int64(w)*4096); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	checkDevice(t, o, model)
}

func TestOverlayFiles(t *testing.T) {
	dir := t.TempDir()
	base := overlayBase()
	o, err := OpenOverlay(dir, "cp", VolumeDevice(base))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.WriteAt(context.Background(), []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOverlay(dir, "cp", VolumeDevice(base)); !errors.Is(err, ErrOverlayBusy) {
		t.Fatalf("second open: %v", err)
	}
	if err := DiscardOverlay(dir, "cp"); !errors.Is(err, ErrOverlayBusy) {
		t.Fatalf("discard while open: %v", err)
	}
	if ids, err := Overlays(dir); err != nil || !slices.Equal(ids, []string{"cp"}) {
		t.Fatalf("Overlays: %v %v", ids, err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	other := &memVolume{data: make([]byte, 1<<20)}
	if _, err := OpenOverlay(dir, "cp", VolumeDevice(other)); !errors.Is(err, ErrOverlayMismatch) {
		t.Fatalf("open with another size: %v", err)
	}
	// A damaged bitmap is refused, not trusted.
	b, _ := os.ReadFile(mapPath(dir, "cp"))
	b[len(b)-9] ^= 1
	os.WriteFile(mapPath(dir, "cp"), b, 0o600)
	if _, err := OpenOverlay(dir, "cp", VolumeDevice(base)); !errors.Is(err, ErrOverlayMismatch) {
		t.Fatalf("open with a damaged bitmap: %v", err)
	}
	if err := DiscardOverlay(dir, "cp"); err != nil {
		t.Fatal(err)
	}
	if err := DiscardOverlay(dir, "cp"); !errors.Is(err, ErrNoOverlay) {
		t.Fatalf("second discard: %v", err)
	}
	if ids, _ := Overlays(dir); len(ids) != 0 {
		t.Fatalf("overlays left: %v", ids)
	}
	for _, id := range []string{"", "..", "a/b", "../x"} {
		if _, err := OpenOverlay(dir, id, VolumeDevice(base)); err == nil {
			t.Errorf("overlay ID %q accepted", id)
		}
	}
}
