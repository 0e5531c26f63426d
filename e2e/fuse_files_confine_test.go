package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesRestoreConfined backs up an ext4 file system holding a setuid
// program and a directory symlink leading out, then restores from it
// with `cairn files restore`: the setuid bit is dropped unless
// --keep-setid, and neither the restored symlink nor one planted in the
// destination lets a later restore write outside the destination.
func TestFilesRestoreConfined(t *testing.T) {
	fuseRequire(t, "sfdisk", "mkfs.ext4", "mount", "umount", "losetup")
	e := newRepo(t, repoOpts{})
	tmp := t.TempDir()
	outside := t.TempDir()
	root := fuseTree(t, map[string][]byte{
		"bin/prog":      []byte("#!/bin/sh\n"),
		"b/t/x/evil.sh": []byte("evil"),
	})
	if err := os.Chmod(filepath.Join(root, "bin", "prog"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "a", "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "a", "t", "x")); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(e.scratch, "vm.img")
	fusePartitionedDisk(t, disk, "dos", root)
	cp := e.backup(disk)
	run := func(args ...string) result {
		t.Helper()
		r := fuseFilesRun(t, e, tmp, append([]string{"files", "restore", cp.ID}, args...)...)
		fuseCheckClean(t, tmp)
		return r
	}

	for _, tc := range []struct {
		flag string
		want fs.FileMode
	}{{"", 0o755}, {"--keep-setid", 0o755 | fs.ModeSetuid}} {
		dest := t.TempDir()
		args := []string{"/bin/prog", "--to", dest}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		if r := run(args...); r.code != 0 {
			t.Fatalf("restore %v:\n%s", args, r)
		} else if tc.flag == "" && !strings.Contains(r.stderr, "setuid") {
			t.Errorf("the dropped setuid bit is not reported:\n%s", r)
		}
		if fi, err := os.Stat(filepath.Join(dest, "prog")); err != nil || fi.Mode() != tc.want {
			t.Errorf("prog restored %q: mode %v (%v), want %v", tc.flag, fi.Mode(), err, tc.want)
		}
	}

	dest := t.TempDir()
	if r := run("/a/t", "--to", dest); r.code != 0 {
		t.Fatalf("restore /a/t:\n%s", r)
	}
	if r := run("/b/t", "--to", dest); r.code == 0 {
		t.Errorf("restore through the restored symlink succeeded:\n%s", r)
	} else {
		checkErrorLine(t, r)
	}
	planted := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(planted, "t")); err != nil {
		t.Fatal(err)
	}
	if r := run("/b/t", "--to", planted); r.code == 0 {
		t.Errorf("restore into a planted symlink succeeded:\n%s", r)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the destination: %v", ents)
	}
}
