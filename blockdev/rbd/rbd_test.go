//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/ceph/go-ceph/rbd"

	"cairn/blockdev"
	"cairn/blockdev/blockdevtest"
	"cairn/internal/testenv"
)

const (
	mib      = 1 << 20
	fastDiff = rbd.FeatureLayering | rbd.FeatureExclusiveLock | rbd.FeatureObjectMap | rbd.FeatureFastDiff
)

// testCluster connects through $CEPH_CONF, as the CLI does. Without it the
// test skips, or fails under CAIRN_REQUIRE_ALL=1.
func testCluster(t *testing.T) *Cluster {
	t.Helper()
	testenv.Lookup(t, "CEPH_CONF", "a Ceph cluster", "start one with scripts/ceph-cluster.sh start DIR and export CEPH_CONF (make test does both)")
	cl, err := Connect(context.Background(), ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// testImage creates an image in pool rbd (or $CAIRN_TEST_RBD_POOL) and
// removes it with its snapshots when the test ends.
func testImage(t *testing.T, cl *Cluster, size int64, features uint64) Spec {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	pool := os.Getenv("CAIRN_TEST_RBD_POOL")
	if pool == "" {
		pool = "rbd"
	}
	s := Spec{Pool: pool, Image: "unit-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + hex.EncodeToString(b[:])}
	io, err := cl.ioctx(s)
	if err != nil {
		t.Fatal(err)
	}
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(rbd.ImageOptionFeatures, features); err != nil {
		t.Fatal(err)
	}
	if err := rbd.CreateImage(io, s.Image, uint64(size), opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer io.Destroy()
		if img, err := rbd.OpenImage(io, s.Image, rbd.NoSnapshot); err == nil {
			snaps, _ := img.GetSnapshotNames()
			for _, sn := range snaps {
				_ = img.GetSnapshot(sn.Name).Remove()
			}
			_ = img.Close()
		}
		_ = rbd.RemoveImage(io, s.Image)
	})
	return s
}

func writeImage(t *testing.T, cl *Cluster, s Spec, off int64, data []byte) {
	t.Helper()
	tgt, err := cl.CreateTarget(context.Background(), s, off+int64(len(data)), blockdev.TargetOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
}

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := mrand.New(mrand.NewPCG(seed, 0))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func covers(ext []blockdev.Extent, off, n int64) bool {
	for _, e := range ext {
		if e.Off <= off && off+n <= e.End() {
			return true
		}
	}
	return false
}

func total(ext []blockdev.Extent) (n int64) {
	for _, e := range ext {
		n += e.Len
	}
	return n
}

func TestSourceDiffAndConcurrentReads(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features uint64
	}{{"fast-diff", fastDiff}, {"exact", rbd.FeatureLayering}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cl := testCluster(t)
			const size = 64 * mib
			s := testImage(t, cl, size, tc.features)
			want := make([]byte, size)
			w1 := randomData(1, 3*mib)
			copy(want[5*mib:], w1)
			writeImage(t, cl, s, 5*mib, w1)

			im, err := cl.OpenImage(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.ID() == "" {
				t.Fatal("empty image ID")
			}
			s1, err := im.CreateSnapshot(ctx, "s1")
			if err != nil {
				t.Fatal(err)
			}
			w2 := randomData(2, 4096)
			copy(want[40*mib+100:], w2)
			writeImage(t, cl, s, 40*mib+100, w2)
			if _, err := im.CreateSnapshot(ctx, "s2"); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := im.Snapshot(ctx, "s1"); err != nil || !ok || got.ID != s1.ID || got.Size != size {
				t.Fatalf("Snapshot(s1) = %+v %v %v, want %+v", got, ok, err, s1)
			}

			src, err := cl.OpenSource(ctx, s.WithSnap("s2"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if src.Size() != size || src.Name() != s.ImageName() || src.FastDiff() != (tc.features&rbd.FeatureFastDiff != 0) {
				t.Fatalf("source size %d name %q fast-diff %v", src.Size(), src.Name(), src.FastDiff())
			}
			alloc, err := src.Allocated(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !covers(alloc, 5*mib, 3*mib) || !covers(alloc, 40*mib+100, 4096) || total(alloc) > 3*4*mib {
				t.Errorf("Allocated = %v: want the writes covered, at most 3 objects", alloc)
			}
			changed, err := src.Changed(ctx, "s1")
			if err != nil {
				t.Fatal(err)
			}
			// Exact diffs report written object extents (here from the
			// object's start); whole-object diffs the whole object.
			maxChanged := int64(64 << 10)
			if src.FastDiff() {
				maxChanged = 4 * mib // one whole object
			}
			if !covers(changed, 40*mib+100, 4096) || total(changed) > maxChanged {
				t.Errorf("Changed(s1) = %v: want the 4 KiB write covered, at most %d bytes", changed, maxChanged)
			}
			if _, err := src.Changed(ctx, "nosuch"); err == nil {
				t.Error("diff from a missing snapshot succeeded")
			}
			canceled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := src.Allocated(canceled); !errors.Is(err, context.Canceled) {
				t.Errorf("Allocated with a canceled context: %v", err)
			}

			// librbd handles are thread-safe: 16 readers at once (-race).
			blockdevtest.ConcurrentReads(t, src, want, 16, 40, 256<<10)

			if err := im.RemoveSnapshot(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
			if err := im.RemoveSnapshot(ctx, "s1"); err != nil {
				t.Errorf("removing a removed snapshot: %v", err)
			}
		})
	}
}

func TestTarget(t *testing.T) {
	ctx := context.Background()
	cl := testCluster(t)
	const size = 16 * mib
	s := testImage(t, cl, size, fastDiff)
	writeImage(t, cl, s, 0, bytes.Repeat([]byte{0xEE}, size))

	if _, err := cl.CreateTarget(ctx, s, size, blockdev.TargetOptions{}); !errors.Is(err, blockdev.ErrTargetExists) {
		t.Fatalf("existing image without Force: %v", err)
	}
	if _, err := cl.CreateTarget(ctx, s, size+1, blockdev.TargetOptions{Force: true}); !errors.Is(err, blockdev.ErrTargetTooSmall) {
		t.Fatalf("image too small: %v", err)
	}
	if _, err := cl.CreateTarget(ctx, s.WithSnap("x"), size, blockdev.TargetOptions{}); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("snapshot as a target: %v", err)
	}
	tgt, err := cl.CreateTarget(ctx, s, size, blockdev.TargetOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if tgt.Fresh() {
		t.Error("an existing image is not fresh")
	}
	// Object-aligned, partial and ragged ranges.
	for _, z := range [][2]int64{{0, 4 * mib}, {5*mib + 100, 1000}, {8 * mib, 8 * mib}} {
		if err := tgt.Zero(z[0], z[1]); err != nil {
			t.Fatalf("Zero(%v): %v", z, err)
		}
	}
	if _, err := tgt.WriteAt([]byte("x"), size); err == nil {
		t.Error("write past the volume succeeded")
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := cl.OpenSource(ctx, s.WithSnap(mustSnap(t, cl, s, "after")))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := make([]byte, size)
	if _, err := src.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xEE}, size)
	clear(want[:4*mib])
	clear(want[5*mib+100 : 5*mib+1100])
	clear(want[8*mib:])
	if !bytes.Equal(got, want) {
		t.Fatal("image after Zero differs from what was zeroed")
	}
	if alloc, _ := src.Allocated(ctx); total(alloc) > 2*4*mib {
		t.Errorf("after zeroing, %d bytes are still allocated: %v (want whole zeroed objects deallocated)", total(alloc), alloc)
	}

	// A new image: created with the size, removed again by Remove.
	fresh := s
	fresh.Image += "-new"
	nt, err := cl.CreateTarget(ctx, fresh, 3*mib+5, blockdev.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nt.Fresh() {
		t.Error("a created image is not fresh")
	}
	if err := nt.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.OpenImage(ctx, fresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("image after Remove: %v, want ErrNotFound", err)
	}
}

func mustSnap(t *testing.T, cl *Cluster, s Spec, name string) string {
	t.Helper()
	im, err := cl.OpenImage(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if _, err := im.CreateSnapshot(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestConnectErrors(t *testing.T) {
	testCluster(t)
	if _, err := Connect(context.Background(), ConnOptions{Conf: "/nonexistent/ceph.conf"}); err == nil {
		t.Error("connect with a missing config file succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Connect(ctx, ConnOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("connect with a canceled context: %v", err)
	}
	cl := testCluster(t)
	if _, err := cl.OpenImage(context.Background(), Spec{Pool: "no-such-pool", Image: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing pool: %v", err)
	}
}
