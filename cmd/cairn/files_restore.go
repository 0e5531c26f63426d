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
	// SetidDropped lists the files whose setuid or setgid bit was not
	// restored (without --keep-setid).
	SetidDropped []string `json:"setid_dropped,omitempty"`
}

// setid is the setuid and setgid bits.
const setid = fs.ModeSetuid | fs.ModeSetgid

// fileRestorer copies out of a checkpoint's file system (src) into a
// destination directory (dst). Both are os.Roots: every path, on either
// side, is resolved within its root, so no symlink, in the checkpoint or
// in the destination, already there or planted meanwhile, leads a read or
// a write outside.
type fileRestorer struct {
	src, dst  *os.Root
	keepSetid bool
	st        *filesRestored
}

// restoreFiles copies p (file, symlink or tree) out of fsys to dest. If
// dest is an existing directory, the copy goes inside it under p's name.
// Files are created exclusively (never overwritten); directories may
// exist. Modes (without setuid and setgid on files unless keepSetid),
// owners and times are copied; a directory's are set after its contents
// are written.
func restoreFiles(ctx context.Context, fsys *os.Root, p, dest string, keepSetid bool) (*filesRestored, error) {
	rel := relPath(p)
	top, err := fsys.Lstat(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	// The destination itself is the operator's choice and may be reached
	// through symlinks; below it nothing is followed out.
	dstDir, name := filepath.Dir(dest), filepath.Base(dest)
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		dstDir, name = dest, path.Base(rel)
	}
	dst, err := os.OpenRoot(dstDir)
	if err != nil {
		return nil, fmt.Errorf("restore destination: %w", err)
	}
	defer dst.Close()
	r := &fileRestorer{src: fsys, dst: dst, keepSetid: keepSetid, st: &filesRestored{To: filepath.Join(dstDir, name)}}
	if abs, err := filepath.Abs(r.st.To); err == nil {
		r.st.To = abs
	}
	var dirs []dirMeta
	copyOne := func(src string, fi fs.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := path.Join(name, strings.TrimPrefix(strings.TrimPrefix(src, rel), "/"))
		if rel == "." {
			out = path.Join(name, src)
		}
		if fi.IsDir() {
			if err := r.mkdir(out); err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{out, fi})
			return nil
		}
		return r.copyNonDir(ctx, src, out, fi)
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
		if merr := r.dirMeta(dirs[i].out, dirs[i].fi); merr != nil && err == nil {
			err = merr
		}
	}
	if err != nil {
		return r.st, fmt.Errorf("restore %s: %w", p, err)
	}
	return r.st, nil
}

type dirMeta struct {
	out string
	fi  fs.FileInfo
}

// mkdir creates the directory out, or merges into an existing one; an
// existing symlink is never merged into, even one that stays inside.
func (r *fileRestorer) mkdir(out string) error {
	err := r.dst.Mkdir(out, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := r.dst.Lstat(out)
		if lerr != nil {
			return lerr
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory (a %v), so nothing is restored into it", r.outPath(out), fi.Mode().Type())
		}
		err = nil
	}
	if err != nil {
		return err
	}
	r.st.Dirs++
	return nil
}

// copyNonDir restores a file, a symlink, or skips anything else.
func (r *fileRestorer) copyNonDir(ctx context.Context, src, out string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return r.copyRegular(ctx, src, out, fi)
	case m&fs.ModeSymlink != 0:
		link, err := r.src.Readlink(src)
		if err != nil {
			return err
		}
		// The link is written as stored; it is never followed here.
		if err := r.dst.Symlink(link, out); err != nil {
			return err
		}
		r.st.Symlinks++
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			if err := r.dst.Lchown(out, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		return r.setTimes(out, fi)
	default:
		r.st.Skipped = append(r.st.Skipped, "/"+src)
		return nil
	}
}

// copyRegular copies the regular file src to a new file out, and gives it
// src's owner, mode and times through its descriptor.
func (r *fileRestorer) copyRegular(ctx context.Context, src, out string, fi fs.FileInfo) error {
	in, err := r.src.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	// O_EXCL: never overwrite, and never follow a symlink at out.
	f, err := r.dst.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, ctxReader{ctx, in})
	r.st.Bytes += n
	if err == nil {
		err = r.setOwnerMode(f, out, fi)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.setTimes(out, fi)
	}
	if err != nil {
		_ = r.dst.Remove(out)
		return fmt.Errorf("copy %s: %w", src, err)
	}
	r.st.Files++
	return nil
}

// dirMeta gives the directory out the owner, mode and times of fi.
func (r *fileRestorer) dirMeta(out string, fi fs.FileInfo) error {
	d, err := r.dst.Open(out)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := r.setOwnerMode(d, out, fi); err != nil {
		return err
	}
	// "." relative to the directory's own descriptor is the directory.
	return r.setTimesAt(d, ".", out, fi)
}

// setOwnerMode sets f's owner, then its mode: chown clears setuid and
// setgid, which are dropped from files anyway unless keepSetid.
func (r *fileRestorer) setOwnerMode(f *os.File, out string, fi fs.FileInfo) error {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", r.outPath(out), err)
		}
	}
	mode := fi.Mode() & (fs.ModePerm | setid | fs.ModeSticky)
	if !fi.IsDir() && mode&setid != 0 && !r.keepSetid {
		mode &^= setid
		r.st.SetidDropped = append(r.st.SetidDropped, r.outPath(out))
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", r.outPath(out), err)
	}
	return nil
}

// setTimes sets the times of out itself (a symlink's own, not its
// target's), through its parent directory opened within the root.
func (r *fileRestorer) setTimes(out string, fi fs.FileInfo) error {
	parent, err := r.dst.Open(path.Dir(out))
	if err != nil {
		return err
	}
	defer parent.Close()
	return r.setTimesAt(parent, path.Base(out), out, fi)
}

func (r *fileRestorer) setTimesAt(dir *os.File, name, out string, fi fs.FileInfo) error {
	atime := fi.ModTime()
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		atime = time.Unix(sys.Atim.Unix())
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
	if err := unix.UtimesNanoAt(int(dir.Fd()), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", r.outPath(out), err)
	}
	return nil
}

// outPath is out as the operator knows it, for messages.
func (r *fileRestorer) outPath(out string) string {
	return filepath.Join(r.dst.Name(), filepath.FromSlash(out))
}

func (a *app) printFilesRestore(st *filesRestored) error {
	if a.jsonOut {
		return writeJSON(a.stdout, st)
	}
	for _, s := range st.Skipped {
		a.notef("skipped %s (not a file, directory or symlink)", s)
	}
	for _, s := range st.SetidDropped {
		a.notef("dropped the setuid/setgid bits of %s (--keep-setid keeps them)", s)
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
