package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fsTree builds a checkpoint's file system stand-in in a directory and
// opens it as `cairn files` does.
func fsTree(t *testing.T, build func(dir string)) *os.Root {
	t.Helper()
	dir := t.TempDir()
	build(dir)
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestoreFilesSetid restores a tree holding setuid and setgid files:
// the bits are dropped from files (and listed) unless kept on request;
// a setgid directory keeps its bit.
func TestRestoreFilesSetid(t *testing.T) {
	src := fsTree(t, func(d string) {
		must(t, os.MkdirAll(filepath.Join(d, "bin", "shared"), 0o755))
		for name, mode := range map[string]fs.FileMode{"su": 0o755 | fs.ModeSetuid, "sg": 0o755 | fs.ModeSetgid, "plain": 0o644} {
			p := filepath.Join(d, "bin", name)
			must(t, os.WriteFile(p, []byte(name), 0o600))
			must(t, os.Chmod(p, mode))
		}
		must(t, os.Chmod(filepath.Join(d, "bin", "shared"), 0o775|fs.ModeSetgid))
	})
	tests := []struct {
		name    string
		keep    bool
		su, sg  fs.FileMode
		dropped int
	}{
		{name: "default", su: 0o755, sg: 0o755, dropped: 2},
		{name: "keep-setid", keep: true, su: 0o755 | fs.ModeSetuid, sg: 0o755 | fs.ModeSetgid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			st, err := restoreFiles(context.Background(), src, "/bin", dest, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]fs.FileMode{"su": tc.su, "sg": tc.sg, "plain": 0o644, "shared": fs.ModeDir | 0o775 | fs.ModeSetgid} {
				fi, err := os.Lstat(filepath.Join(dest, "bin", name))
				if err != nil || fi.Mode() != want {
					t.Errorf("%s: %v (%v), want %v", name, fi.Mode(), err, want)
				}
			}
			if len(st.SetidDropped) != tc.dropped {
				t.Errorf("setid dropped from %q, want %d files", st.SetidDropped, tc.dropped)
			}
		})
	}
}

// TestRestoreFilesConfined restores into a destination holding a symlink
// that leads out of it, planted there beforehand or by an earlier restore
// of a tree holding such a symlink: nothing is written outside.
func TestRestoreFilesConfined(t *testing.T) {
	outside := t.TempDir()
	src := fsTree(t, func(d string) {
		must(t, os.MkdirAll(filepath.Join(d, "a", "t"), 0o755))
		must(t, os.Symlink(outside, filepath.Join(d, "a", "t", "x")))                            // absolute
		must(t, os.Symlink("../../../"+filepath.Base(outside), filepath.Join(d, "a", "t", "y"))) // relative
		for _, sub := range []string{"x", "y"} {
			must(t, os.MkdirAll(filepath.Join(d, "b", "t", sub), 0o755))
			must(t, os.WriteFile(filepath.Join(d, "b", "t", sub, "evil"), []byte("evil"), 0o644))
		}
		must(t, os.WriteFile(filepath.Join(d, "evil"), []byte("evil"), 0o644))
	})
	ctx := context.Background()

	t.Run("from an earlier restore", func(t *testing.T) {
		dest := t.TempDir()
		if _, err := restoreFiles(ctx, src, "/a/t", dest, false); err != nil {
			t.Fatal(err)
		}
		if l, err := os.Readlink(filepath.Join(dest, "t", "x")); err != nil || l != outside {
			t.Fatalf("restored link x -> %q (%v)", l, err)
		}
		_, err := restoreFiles(ctx, src, "/b/t", dest, false)
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("restoring through the restored symlinks: %v, want a refusal", err)
		}
	})
	t.Run("planted in the destination", func(t *testing.T) {
		dest := t.TempDir()
		must(t, os.Symlink(outside, filepath.Join(dest, "t")))
		must(t, os.Symlink(filepath.Join(outside, "evil"), filepath.Join(dest, "evil")))
		if _, err := restoreFiles(ctx, src, "/b/t", dest, false); err == nil {
			t.Errorf("restoring into a symlinked directory succeeded")
		}
		if _, err := restoreFiles(ctx, src, "/evil", dest, false); err == nil {
			t.Errorf("restoring onto a symlink succeeded")
		}
	})
	var names []string
	_ = filepath.WalkDir(outside, func(p string, d fs.DirEntry, err error) error {
		if p != outside {
			names = append(names, p)
		}
		return nil
	})
	if !slices.Equal(names, []string(nil)) {
		t.Errorf("written outside the destination: %q", names)
	}
}
