package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cairn/blockdev"
	"cairn/plugins"
)

// TestSymlinksNotProtectable puts symlinks into a root, to a secret
// outside it and to a file inside it: neither is listed nor protectable,
// and a listed file replaced by a symlink afterwards is not read either.
func TestSymlinksNotProtectable(t *testing.T) {
	ctx := context.Background()
	p, repo, root, _ := setup(t)
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(root, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, to := range map[string]string{"shadow": secret, "alias.img": disk, "dangling": "/nonexistent"} {
		if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	insts, err := p.Instances(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].Name != disk {
		t.Fatalf("instances %+v, want only %s", insts, disk)
	}
	for _, name := range []string{"shadow", "alias.img"} {
		link := filepath.Join(root, name)
		res := plugins.Resource{ID: InstanceID(link), Type: Type, Name: link}
		if _, err := p.Protect(ctx, repo, plugins.ProtectRequest{Project: "proj", Resource: res}); !errors.Is(err, plugins.ErrInstanceNotFound) {
			t.Errorf("protect %s: %v, want %v", name, err, plugins.ErrInstanceNotFound)
		}
	}
	// Listed as a file, swapped for a symlink before the backup opens it.
	if err := os.Remove(disk); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, disk); err != nil {
		t.Fatal(err)
	}
	if _, err := openIn(root, "disk.img"); !errors.Is(err, blockdev.ErrSymlink) {
		t.Errorf("open of a file swapped for a symlink: %v, want %v", err, blockdev.ErrSymlink)
	}
	if cps, _ := repo.Checkpoints(ctx); len(cps) != 0 {
		t.Errorf("%d checkpoints made of symlinks", len(cps))
	}
}

// TestRestoreTargetConfined asks for restores through a symlinked
// directory (to outside the restore directory), onto a symlink, and onto
// a path under a file: each is refused by Target (what the appliance asks
// before queueing) and by Restore, and nothing is written outside.
func TestRestoreTargetConfined(t *testing.T) {
	ctx := context.Background()
	p, repo, root, rdir := setup(t)
	src := filepath.Join(root, "disk.img")
	if err := os.WriteFile(src, []byte(strings.Repeat("data", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	res := plugins.Resource{ID: InstanceID(src), Type: Type, Name: src}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Project: "proj", Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(rdir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.img"), filepath.Join(rdir, "link.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rdir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"symlinked directory":        filepath.Join(rdir, "escape", "x.img"),
		"symlinked directory deeper": filepath.Join(rdir, "escape", "new", "x.img"),
		"onto a symlink":             filepath.Join(rdir, "link.img"),
		"under a file":               filepath.Join(rdir, "file", "x.img"),
		"partial name":               filepath.Join(rdir, "x"+partialSuffix),
	} {
		t.Run(name, func(t *testing.T) {
			req := plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b.ID, Parameters: map[string]any{"restore_path": path}}
			if _, err := p.Target(req); !errors.Is(err, plugins.ErrInvalidParameter) {
				t.Errorf("Target: %v, want %v", err, plugins.ErrInvalidParameter)
			}
			if _, err := p.Restore(ctx, repo, req); !errors.Is(err, plugins.ErrInvalidParameter) {
				t.Errorf("Restore: %v, want %v", err, plugins.ErrInvalidParameter)
			}
		})
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the restore directory: %v", ents)
	}
	// A fresh subdirectory is fine, and no partial file is left.
	where, err := p.Restore(ctx, repo, plugins.RestoreRequest{Project: "proj", Resource: res, BackupID: b.ID,
		Parameters: map[string]any{"restore_path": filepath.Join(rdir, "new", "dir", "x.img")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(where); err != nil || string(got) != strings.Repeat("data", 4096) {
		t.Errorf("restored %s differs (%v)", where, err)
	}
	if m, _ := filepath.Glob(filepath.Join(rdir, "new", "dir", "*"+partialSuffix)); len(m) != 0 {
		t.Errorf("partial files left: %v", m)
	}
}

func TestProtectable(t *testing.T) {
	for _, tc := range []struct {
		mode          os.FileMode
		devices, want bool
	}{
		{0, false, true}, // regular file
		{os.ModeSymlink, true, false},
		{os.ModeDir, true, false},
		{os.ModeDevice, false, false},
		{os.ModeDevice, true, true},
		{os.ModeDevice | os.ModeCharDevice, true, false},
		{os.ModeNamedPipe, true, false},
	} {
		if got := protectable(tc.mode, tc.devices); got != tc.want {
			t.Errorf("protectable(%v, devices %v) = %v, want %v", tc.mode, tc.devices, got, tc.want)
		}
	}
}

// TestDevicesOnlyWhenAllowed puts a block device node into a root: it is
// listed only when the plugin allows devices.
func TestDevicesOnlyWhenAllowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a device node needs root")
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "loop.dev")
	if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
		t.Fatalf("mknod as root: %v", err)
	}
	for _, allow := range []bool{false, true} {
		p, err := New([]string{dir}, t.TempDir(), Options{Devices: allow})
		if err != nil {
			t.Fatal(err)
		}
		insts, err := p.Instances(context.Background(), "proj")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(insts) == 1 && insts[0].Name == dev; got != allow {
			t.Errorf("devices allowed %v: instances %+v", allow, insts)
		}
	}
}
