package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// filesRestored counts what `cairn files restore` copied.
type filesRestored struct {
	To       string   `json:"to"`
	Files    int      `json:"files"`
	Dirs     int      `json:"dirs"`
	Symlinks int      `json:"symlinks"`
	Bytes    int64    `json:"bytes"`
	Skipped  []string `json:"skipped,omitempty"` // devices, FIFOs, sockets
}

// restoreFiles copies p (file, symlink or tree) out of fsys to dest. If
// dest is an existing directory, the copy goes inside it under p's name.
// Files are created exclusively (never overwritten); directories may
// exist. Modes, owners and times are copied; a directory's are set after
// its contents are written.
func restoreFiles(ctx context.Context, fsys *os.Root, p, dest string) (*filesRestored, error) {
	rel := relPath(p)
	top, err := fsys.Lstat(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	target := dest
	if st, err := os.Stat(dest); err == nil && st.IsDir() && rel != "." {
		target = filepath.Join(dest, path.Base(rel))
	}
	if abs, err := filepath.Abs(target); err == nil {
		target = abs
	}
	st := &filesRestored{To: target}
	type dirMeta struct {
		out string
		fi  fs.FileInfo
	}
	var dirs []dirMeta
	copyOne := func(src string, fi fs.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := filepath.Join(target, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(src, rel), "/")))
		if rel == "." {
			out = filepath.Join(target, filepath.FromSlash(src))
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			if err := os.Mkdir(out, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, dirMeta{out, fi})
			st.Dirs++
			return nil
		case m.IsRegular():
			n, err := copyRegular(ctx, fsys, src, out)
			st.Bytes += n
			if err != nil {
				return err
			}
			st.Files++
		case m&fs.ModeSymlink != 0:
			link, err := fsys.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, out); err != nil {
				return err
			}
			st.Symlinks++
		default:
			st.Skipped = append(st.Skipped, "/"+src)
			return nil
		}
		return setMeta(out, fi)
	}
	if top.IsDir() {
		err = fs.WalkDir(fsys.FS(), rel, func(src string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return copyOne(src, fi)
		})
	} else {
		err = copyOne(rel, top)
	}
	// Directories last and deepest first: writing into a directory changes
	// its mtime, and a read-only one could not be written into.
	for i := len(dirs) - 1; i >= 0; i-- {
		if merr := setMeta(dirs[i].out, dirs[i].fi); merr != nil && err == nil {
			err = merr
		}
	}
	if err != nil {
		return st, fmt.Errorf("restore %s: %w", p, err)
	}
	return st, nil
}

// copyRegular copies the regular file src to a new file out.
func copyRegular(ctx context.Context, fsys *os.Root, src, out string) (int64, error) {
	in, err := fsys.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, ctxReader{ctx, in})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return n, fmt.Errorf("copy %s: %w", src, err)
	}
	return n, nil
}

// setMeta gives out the owner, permissions and times of fi. Symlinks keep
// their own permissions.
func setMeta(out string, fi fs.FileInfo) error {
	sys, _ := fi.Sys().(*syscall.Stat_t)
	if sys != nil {
		if err := os.Lchown(out, int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		// After chown, which clears setuid and setgid.
		if err := unix.Chmod(out, unixPerm(fi.Mode())); err != nil {
			return fmt.Errorf("chmod %s: %w", out, err)
		}
	}
	atime := fi.ModTime()
	if sys != nil {
		atime = time.Unix(sys.Atim.Unix())
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, out, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", out, err)
	}
	return nil
}

func (a *app) printFilesRestore(st *filesRestored) error {
	if a.jsonOut {
		return writeJSON(a.stdout, st)
	}
	for _, s := range st.Skipped {
		a.notef("skipped %s (not a file, directory or symlink)", s)
	}
	if a.quiet {
		return nil
	}
	var t kv
	t.add("restored to", "%s", st.To)
	t.add("files", "%d (%s)", st.Files, formatSize(st.Bytes))
	t.add("directories", "%d", st.Dirs)
	t.add("symlinks", "%d", st.Symlinks)
	return t.write(a.stdout)
}
