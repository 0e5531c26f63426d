package blockdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// allocated is the disk space a file uses, from st_blocks.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// checkContent asserts that path is size bytes long, holds the writes, and
// reads as zeros everywhere else.
func checkContent(t *testing.T, path string, size int64, writes ...write) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != size {
		t.Fatalf("%s is %d bytes, want %d", path, len(got), size)
	}
	want := make([]byte, size)
	for _, w := range writes {
		copy(want[w.off:], w.data)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: byte %d = %#x, want %#x", path, i, got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestCreateFileTarget(t *testing.T) {
	const size = 8 * mib
	block := write{4 * mib, fill(4096, 0xAB)}
	tests := []struct {
		name    string
		old     []byte // content of an existing file; nil: no file
		force   bool
		wantErr error
	}{
		{name: "new file"},
		{name: "new file with force", force: true},
		{name: "existing refused", old: fill(mib, 0xEE), wantErr: ErrTargetExists},
		{name: "existing empty refused", old: []byte{}, wantErr: ErrTargetExists},
		{name: "existing forced, same size", old: fill(size, 0xEE), force: true},
		{name: "existing forced, larger", old: fill(2*size, 0xEE), force: true},
		{name: "existing forced, smaller", old: fill(mib, 0xEE), force: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "restore.img")
			if tc.old != nil {
				if err := os.WriteFile(path, tc.old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tgt, err := CreateFileTarget(path, size, TargetOptions{Force: tc.force})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "--force") {
					t.Errorf("error %q does not mention --force", err)
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.old) {
					t.Errorf("refused target was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tgt.WriteAt(block.data, block.off); err != nil {
				t.Fatal(err)
			}
			if err := tgt.Close(); err != nil {
				t.Fatal(err)
			}
			// Old bytes must not show through where nothing was written.
			checkContent(t, path, size, block)
		})
	}
}

func TestFileTargetSparse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "restore.img")
	const size = 64 * mib
	tgt, err := CreateFileTarget(path, size, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	block := write{32 * mib, fill(4096, 0x5A)}
	if _, err := tgt.WriteAt(block.data, block.off); err != nil {
		t.Fatal(err)
	}
	// Holes of a fresh file are already zero: Zero must not allocate them.
	if err := tgt.Zero(0, 16*mib); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Fatalf("size = %d, want %d", fi.Size(), size)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if got := allocated(t, path); got > 1*mib {
		t.Errorf("target uses %d bytes on disk after one 4 KiB write, want a sparse file", got)
	}
	checkContent(t, path, size, block)
}

func TestFileTargetZero(t *testing.T) {
	const size = 4 * mib
	tests := []struct {
		name      string
		off, len  int64
		sparseMax int64 // upper bound of disk use after Zero; 0: no check
	}{
		{name: "aligned hole", off: mib, len: 2 * mib, sparseMax: 2*mib + 64<<10},
		{name: "unaligned range", off: 100, len: 50},
		{name: "to the end", off: 3*mib + 1, len: mib - 1},
		{name: "empty", off: mib, len: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "restore.img")
			tgt, err := CreateFileTarget(path, size, TargetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tgt.WriteAt(fill(size, 0xFF), 0); err != nil {
				t.Fatal(err)
			}
			if err := tgt.Zero(tc.off, tc.len); err != nil {
				t.Fatal(err)
			}
			if err := tgt.Close(); err != nil {
				t.Fatal(err)
			}
			checkContent(t, path, size,
				write{0, fill(int(tc.off), 0xFF)},
				write{tc.off + tc.len, fill(int(size-tc.off-tc.len), 0xFF)})
			if got := allocated(t, path); tc.sparseMax > 0 && got > tc.sparseMax {
				t.Errorf("after Zero the file uses %d bytes, want at most %d (hole punched)", got, tc.sparseMax)
			}
		})
	}
}

func TestFileTargetBounds(t *testing.T) {
	dir := t.TempDir()
	tgt, err := CreateFileTarget(filepath.Join(dir, "img"), mib, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if _, err := tgt.WriteAt(make([]byte, 2), mib-1); err == nil {
		t.Error("WriteAt past the size succeeded")
	}
	if err := tgt.Zero(mib-1, 2); err == nil {
		t.Error("Zero past the size succeeded")
	}
	if err := tgt.Zero(-1, 1); err == nil {
		t.Error("Zero at a negative offset succeeded")
	}

	if _, err := CreateFileTarget(dir, mib, TargetOptions{Force: true}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("directory target: err = %v, want ErrUnsupportedType", err)
	}
}

// loopDevice attaches backing to a free loop device and returns its path. It
// skips the test where loop devices cannot be set up (not root, containers).
func loopDevice(t *testing.T, backing string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no loop devices: %v", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Skipf("no free loop device: %v", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	loop, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("open %s: %v", dev, err)
	}
	file, err := os.OpenFile(backing, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	cfg := unix.LoopConfig{Fd: uint32(file.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if err := unix.IoctlLoopConfigure(int(loop.Fd()), &cfg); err != nil {
		loop.Close()
		t.Skipf("configure %s: %v", dev, err)
	}
	t.Cleanup(func() {
		_ = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
		loop.Close()
	})
	return dev
}

func TestBlockDevice(t *testing.T) {
	const devSize = 8 * mib
	backing := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, fill(devSize, 0xEE), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, backing)

	src, err := OpenFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if src.Size() != devSize {
		t.Errorf("Size() = %d, want %d", src.Size(), devSize)
	}
	ext, err := src.Allocated(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 1 || ext[0] != (Extent{Off: 0, Len: devSize}) {
		t.Errorf("Allocated() = %v, want the whole device", ext)
	}
	src.Close()

	if _, err := CreateFileTarget(dev, devSize, TargetOptions{}); !errors.Is(err, ErrTargetExists) {
		t.Fatalf("without force: err = %v, want ErrTargetExists", err)
	}
	_, err = CreateFileTarget(dev, devSize+1, TargetOptions{Force: true})
	if !errors.Is(err, ErrTargetTooSmall) {
		t.Fatalf("too small: err = %v, want ErrTargetTooSmall", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(devSize)) || !strings.Contains(msg, fmt.Sprint(devSize+1)) {
		t.Errorf("error %q lacks the sizes", msg)
	}

	const size = 6 * mib // smaller than the device: the tail is left alone
	tgt, err := CreateFileTarget(dev, size, TargetOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	block := write{mib, fill(4096, 0x5A)}
	if _, err := tgt.WriteAt(block.data, block.off); err != nil {
		t.Fatal(err)
	}
	// Aligned ranges go through BLKZEROOUT, unaligned ones through writes.
	for _, z := range []Extent{{Off: 0, Len: mib}, {Off: 2 * mib, Len: 4 * mib}, {Off: mib + 4096, Len: 100}, {Off: mib + 4196, Len: mib - 4196}} {
		if err := tgt.Zero(z.Off, z.Len); err != nil {
			t.Fatalf("Zero(%v): %v", z, err)
		}
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	want := fill(devSize, 0xEE)
	copy(want, make([]byte, size))
	copy(want[block.off:], block.data)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("device byte %d = %#x, want %#x", i, got[i], want[i])
	}
}

// TestFileTargetWriteback checks that a restore's data starts on its way
// to the disk while the restore runs, not only at the fsync of Close: the
// kernel on its own leaves a few MiB dirty for 30 s. cachestat(2) counts
// the file's dirty pages; they must all be gone, written back, within 10 s
// of the last write, and the file still open.
func TestFileTargetWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restore.img")
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, which has no writeback")
	}
	tgt, err := CreateFileTarget(path, 64*mib, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Abort()
	const written = 4 * writebackBytes
	data := fill(mib, 0xC3)
	for off := int64(0); off < written; off += mib {
		if _, err := tgt.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Cachestat_t
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Cachestat(uint(tgt.f.Fd()), &unix.CachestatRange{Off: 0, Len: 64 * mib}, &st, 0)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("no cachestat(2) on this kernel (before Linux 6.5)")
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Dirty == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d written pages still dirty 10 s after the last write: writeback was not started", st.Dirty, written/4096)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Cache == 0 {
		t.Fatalf("cachestat saw none of the %d written pages in the cache: it measured nothing", written/4096)
	}
}
