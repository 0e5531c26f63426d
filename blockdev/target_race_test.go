package blockdev

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFileTargetRace opens two restores of different volumes to one path
// before either writes, as two concurrent `cairn restore` runs do, and
// checks that the path ends up holding exactly one of them and that no
// temporary file is left.
func TestFileTargetRace(t *testing.T) {
	const size = 2 * mib
	a, b := fill(size, 0xAA), fill(size/2, 0xBB) // b is a volume with a hole in its second half
	wantB := append(bytes.Clone(b), make([]byte, size/2)...)
	tests := []struct {
		name  string
		old   []byte // an existing file at the path
		force bool
		// want is the file's content once both finished; aWins/bWins
		// say which Close must succeed.
		want         []byte
		aWins, bWins bool
	}{
		{name: "new path", want: a, aWins: true},
		{name: "forced over a file", old: fill(size, 0xEE), force: true, want: wantB, aWins: true, bWins: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "restore.img")
			if tc.old != nil {
				if err := os.WriteFile(path, tc.old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ta, err := CreateFileTarget(path, size, TargetOptions{Force: tc.force})
			if err != nil {
				t.Fatal(err)
			}
			tb, errB := CreateFileTarget(path, size, TargetOptions{Force: tc.force})
			if errB == nil {
				if _, err := tb.WriteAt(b, 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := ta.WriteAt(a, 0); err != nil {
				t.Fatal(err)
			}
			if err := ta.Close(); (err == nil) != tc.aWins {
				t.Errorf("first restore: %v, want success %v", err, tc.aWins)
			}
			if errB == nil {
				errB = tb.Close()
			}
			if (errB == nil) != tc.bWins {
				t.Errorf("second restore: %v, want success %v", errB, tc.bWins)
			}
			if errB != nil && !errors.Is(errB, ErrTargetExists) {
				t.Errorf("second restore: %v, want %v", errB, ErrTargetExists)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("%s holds %d bytes (%v) that are not exactly one of the two volumes", path, len(got), err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{"restore.img"}) {
				t.Errorf("directory holds %q, want only restore.img", got)
			}
		})
	}
}

// TestFileTargetHidden checks that the path does not exist while the
// restore runs, and that Abort leaves nothing behind.
func TestFileTargetHidden(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vm.img")
	tgt, err := CreateFileTarget(path, mib, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.WriteAt(fill(4096, 1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists before the restore completed: %v", path, err)
	}
	if got := dirNames(t, dir); len(got) != 1 || filepath.Ext(got[0]) != PartialSuffix {
		t.Errorf("directory holds %q, want one %s file", got, PartialSuffix)
	}
	tgt.Abort()
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("after Abort the directory holds %q", got)
	}
	if err := tgt.Close(); err == nil {
		t.Errorf("Close after Abort succeeded")
	}
}

// TestCreateFileTargetIn checks that a target inside a root is never
// written through a symlink that leads out of it.
func TestCreateFileTargetIn(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.img"), filepath.Join(dir, "link.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tc := range []struct {
		name  string
		force bool
		ok    bool
	}{
		{name: "escape/x.img"},
		{name: "../x.img"},
		{name: "/x.img"},
		{name: "link.img"},                        // exists
		{name: "link.img", force: true, ok: true}, // replaces the link, writes nothing outside
		{name: "sub/y.img", ok: true},
	} {
		tgt, err := CreateFileTargetIn(root, tc.name, mib, TargetOptions{Force: tc.force})
		if err == nil {
			if _, err = tgt.WriteAt(fill(4096, 7), 0); err == nil {
				err = tgt.Close()
			} else {
				tgt.Abort()
			}
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s (force %v): %v, want success %v", tc.name, tc.force, err, tc.ok)
		}
	}
	if got := dirNames(t, outside); len(got) != 0 {
		t.Errorf("written outside the root: %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "link.img")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("link.img after a forced restore: %v, %v; want a regular file", fi, err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
