package nbd

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// liveOp applies one random read, write or zero to d and to the model
// want, within [lo, hi).
func liveOp(t *testing.T, rng *rand.Rand, d *LiveDevice, want []byte, lo, hi int64) {
	ctx := context.Background()
	off := lo + rng.Int64N(hi-lo)
	n := 1 + rng.Int64N(min(hi-off, 3*Granularity))
	switch rng.IntN(4) {
	case 0, 1:
		got := make([]byte, n)
		if err := d.ReadAt(ctx, got, off); err != nil {
			t.Error(err)
			return
		}
		if !bytes.Equal(got, want[off:off+n]) {
			t.Errorf("read %d+%d differs from the model", off, n)
		}
	case 2:
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.IntN(256))
		}
		if err := d.WriteAt(ctx, p, off); err != nil {
			t.Error(err)
			return
		}
		copy(want[off:], p)
	case 3:
		if err := d.Zero(ctx, off, n, rng.IntN(2) == 0); err != nil {
			t.Error(err)
			return
		}
		clear(want[off : off+n])
	}
}

// checkTarget compares the target file with want.
func checkTarget(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("target differs from the model (%d bytes, want %d)", len(got), len(want))
	}
}

// TestLiveModel runs random reads, writes and zeroes from several clients
// (each in its own range, the ranges sharing granules) against a model
// while the copier hydrates the rest.
func TestLiveModel(t *testing.T) {
	vol := overlayBase()
	vol.delay = 200 * time.Microsecond
	path := filepath.Join(t.TempDir(), "target.img")
	d, err := OpenLive(context.Background(), path, "cp1", vol, LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Hydrated == 0 || st.Hydrated == st.Size || st.Resumed {
		t.Fatalf("fresh stats %+v: want the hole granules hydrated and nothing else", st)
	}
	want := bytes.Clone(vol.data)
	size := int64(len(want))

	copied := make(chan error, 1)
	go func() {
		copied <- d.Hydrate(context.Background(), HydrateOptions{Workers: 3, SaveEvery: time.Millisecond})
	}()
	const clients = 4
	var wg sync.WaitGroup
	for c := range int64(clients) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range 150 {
				liveOp(t, rng, d, want, c*size/clients, (c+1)*size/clients)
			}
		})
	}
	wg.Wait()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	if !d.Complete() {
		t.Fatalf("not complete after Hydrate: %+v", d.Stats())
	}
	checkDevice(t, d, want)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	checkTarget(t, path, want)
	if _, err := os.Stat(path + LiveStateSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file left behind after completion: %v", err)
	}
}

// TestLiveResume stops a live restore half way without closing it (a
// crash after a flush), resumes it and checks the final bytes.
func TestLiveResume(t *testing.T) {
	vol := overlayBase()
	vol.delay = 10 * time.Millisecond
	path := filepath.Join(t.TempDir(), "target.img")
	ctx := context.Background()
	d, err := OpenLive(ctx, path, "cp1", vol, LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(vol.data)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		liveOp(t, rng, d, want, 0, int64(len(want))/4)
	}
	hctx, cancel := context.WithTimeout(ctx, 25*time.Millisecond)
	err = d.Hydrate(hctx, HydrateOptions{Workers: 1, SaveEvery: 5 * time.Millisecond})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("interrupted Hydrate: %v, want the deadline", err)
	}
	before := d.Stats()
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d.gf.f.Close() // crash: no Close, the lock goes with the descriptor

	if _, err := OpenLive(ctx, path, "cp2", vol, LiveOptions{}); !errors.Is(err, ErrLiveState) {
		t.Fatalf("resume as another checkpoint: %v, want ErrLiveState", err)
	}
	d, err = OpenLive(ctx, path, "cp1", vol, LiveOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLive(ctx, path, "cp1", vol, LiveOptions{}); !errors.Is(err, ErrLiveBusy) {
		t.Fatalf("second live restore of one target: %v, want ErrLiveBusy", err)
	}
	// Forced, of another checkpoint: still refused, and the running one's
	// file is left alone.
	held, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLive(ctx, path, "cp2", vol, LiveOptions{Force: true}); !errors.Is(err, ErrLiveBusy) {
		t.Fatalf("forced live restore of a busy target: %v, want ErrLiveBusy", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, held) {
		t.Fatalf("a refused forced live restore changed the running one's target (%v)", err)
	}
	st := d.Stats()
	if !st.Resumed || st.Hydrated != before.Hydrated || st.Writes != before.Writes {
		t.Fatalf("resumed with %+v, stopped with %+v", st, before)
	}
	vol.delay = 0
	if err := d.Hydrate(ctx, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := d.Stats().Fetched; got > st.Size-st.Hydrated {
		t.Fatalf("resume fetched %d bytes, only %d were missing", got, st.Size-st.Hydrated)
	}
	checkDevice(t, d, want)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	checkTarget(t, path, want)
}

// TestLiveRefuses checks that an existing target is only replaced with
// Force and that block-aligned holes stay sparse.
func TestLiveRefuses(t *testing.T) {
	vol := overlayBase()
	path := filepath.Join(t.TempDir(), "target.img")
	ctx := context.Background()
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLive(ctx, path, "cp1", vol, LiveOptions{}); err == nil {
		t.Fatal("an existing target without state was overwritten without Force")
	}
	d, err := OpenLive(ctx, path, "cp1", vol, LiveOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ext, err := d.Extents(256<<10, 64<<10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 1 || !ext[0].Hole {
		t.Fatalf("the checkpoint's hole at 256 KiB reads as %+v", ext)
	}
	if err := d.WriteAt(ctx, []byte{1}, d.Size()); err == nil {
		t.Fatal("a write beyond the end succeeded")
	}
}
