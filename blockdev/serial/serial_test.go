package serial

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const volume = "0e3c1d7a-6a52-4a8e-b1f4-79d0c2a1e5aa"

// blockDevice returns a block device node: one made in a temporary
// directory (root), else the first one in /dev.
func blockDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk")
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))); err == nil {
		return p
	}
	es, _ := os.ReadDir("/dev")
	for _, e := range es {
		if fi, err := os.Stat(filepath.Join("/dev", e.Name())); err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0 {
			return filepath.Join("/dev", e.Name())
		}
	}
	t.Skip("no block device node can be made or found (not root, no /dev)")
	return ""
}

func TestNames(t *testing.T) {
	got := Names(volume)
	want := []string{"virtio-0e3c1d7a-6a52-4a8e-b", "scsi-0QEMU_QEMU_HARDDISK_" + volume}
	if !slices.Equal(got, want) {
		t.Fatalf("Names(%s) = %v, want %v", volume, got, want)
	}
	if got := Names("short"); got[0] != "virtio-short" {
		t.Errorf("Names(short)[0] = %s, want virtio-short", got[0])
	}
}

func TestDirFind(t *testing.T) {
	dev := blockDevice(t)
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		links map[string]string // name in the device directory → target
		id    string
		want  string // "" for ErrNoDevice
	}{
		{"virtio link", map[string]string{"virtio-0e3c1d7a-6a52-4a8e-b": dev}, volume, dev},
		{"scsi link", map[string]string{"scsi-0QEMU_QEMU_HARDDISK_" + volume: dev}, volume, dev},
		{"relative link", map[string]string{"virtio-0e3c1d7a-6a52-4a8e-b": "DEV"}, volume, dev},
		{"other volume", map[string]string{"virtio-1e3c1d7a-6a52-4a8e-b": dev}, volume, ""},
		{"scsi name cut to 20", map[string]string{"scsi-0QEMU_QEMU_HARDDISK_0e3c1d7a-6a52-4a8e-b": dev}, volume, ""},
		{"dangling link", map[string]string{"virtio-0e3c1d7a-6a52-4a8e-b": "/nonexistent/cairn"}, volume, ""},
		{"regular file", map[string]string{"virtio-0e3c1d7a-6a52-4a8e-b": regular}, volume, ""},
		{"empty directory", nil, volume, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, target := range tc.links {
				if target == "DEV" {
					// A relative link, as udev makes them (../../vdb).
					rel, err := filepath.Rel(dir, dev)
					if err != nil {
						t.Fatal(err)
					}
					target = rel
				}
				if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Dir{Path: dir, Wait: 20 * time.Millisecond, Poll: time.Millisecond}.Find(context.Background(), tc.id)
			if tc.want == "" {
				if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "virtio-0e3c1d7a-6a52-4a8e-b") {
					t.Fatalf("Find = %q, %v; want ErrNoDevice naming the directory and the names waited for", got, err)
				}
				return
			}
			want, _ := filepath.EvalSymlinks(tc.want)
			if err != nil || got != want {
				t.Fatalf("Find = %q, %v; want %s", got, err, want)
			}
		})
	}
}

// TestDirFindWaits: a device that appears after Find started (usually
// after its first look; the test holds either way) is found.
func TestDirFindWaits(t *testing.T) {
	dev := blockDevice(t)
	dir := t.TempDir()
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = os.Symlink(dev, filepath.Join(dir, "virtio-0e3c1d7a-6a52-4a8e-b"))
	}()
	got, err := Dir{Path: dir, Wait: time.Minute, Poll: time.Millisecond}.Find(context.Background(), volume)
	want, _ := filepath.EvalSymlinks(dev)
	if err != nil || got != want {
		t.Fatalf("Find = %q, %v; want %s", got, err, want)
	}
}

func TestDirFindCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Dir{Path: t.TempDir(), Wait: time.Minute}.Find(ctx, volume)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoDevice) {
		t.Fatalf("Find with a cancelled context: %v; want context.Canceled", err)
	}
}

func TestDirFindBadID(t *testing.T) {
	for _, id := range []string{"", "..", "a/b"} {
		if _, err := (Dir{Path: t.TempDir()}).Find(context.Background(), id); err == nil {
			t.Errorf("Find(%q): no error", id)
		}
	}
}

func TestDirGone(t *testing.T) {
	dev := blockDevice(t)
	for _, tc := range []struct {
		name  string
		links []string
		err   error
	}{
		{"nothing there", nil, nil},
		{"another volume's device", []string{"virtio-1e3c1d7a-6a52-4a8e-b"}, nil},
		{"virtio link stays", []string{"virtio-0e3c1d7a-6a52-4a8e-b"}, ErrStillThere},
		{"scsi link stays", []string{"scsi-0QEMU_QEMU_HARDDISK_" + volume}, ErrStillThere},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range tc.links {
				if err := os.Symlink(dev, filepath.Join(dir, n)); err != nil {
					t.Fatal(err)
				}
			}
			err := Dir{Path: dir, Wait: 20 * time.Millisecond, Poll: time.Millisecond}.Gone(context.Background(), volume)
			if tc.err == nil && err != nil || tc.err != nil && (!errors.Is(err, tc.err) || !strings.Contains(err.Error(), "still there")) {
				t.Fatalf("Gone = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestDirGoneWaits: a device removed after Gone started is waited for.
func TestDirGoneWaits(t *testing.T) {
	dev := blockDevice(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "virtio-0e3c1d7a-6a52-4a8e-b")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = os.Remove(link)
	}()
	if err := (Dir{Path: dir, Wait: time.Minute, Poll: time.Millisecond}).Gone(context.Background(), volume); err != nil {
		t.Fatalf("Gone: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Gone returned while %s was there", link)
	}
}
