package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// PartialSuffix ends the name of every file a restore is still writing:
// "." + the target's name + "." + a random number + PartialSuffix, in the
// target's directory. One left behind was cut off by a crash and may be
// removed.
const PartialSuffix = ".cairn-partial"

// TargetOptions control how CreateFileTarget treats an existing path.
type TargetOptions struct {
	// Force allows overwriting an existing regular file (it is replaced
	// when the restore completes) or a block device.
	Force bool
}

// CreateFileTarget opens path for restoring a volume of size bytes.
//
// A regular file is restored under a temporary name in path's directory
// (see PartialSuffix), as a sparse file, so never-written bytes cost no
// disk space; Close renames it to path. An existing path is refused
// unless opts.Force is set, and so is a path that another restore or
// process creates while this one runs: two restores racing to one path
// give one winner and ErrTargetExists for the other, never a mixed file.
// With opts.Force the last restore to finish wins, and an existing file
// (or a symlink at path) is replaced, not written into; until then it
// keeps its content and space.
//
// A block device always needs opts.Force, must hold at least size bytes,
// and is opened exclusively so that a mounted device is refused; it is
// written in place and its holes must be cleared with Zero.
func CreateFileTarget(path string, size int64, opts TargetOptions) (*FileTarget, error) {
	if size < 0 {
		return nil, fmt.Errorf("restore target %s: negative size %d", path, size)
	}
	// Stat follows symlinks: block devices are usually reached through
	// one (/dev/vg0/db, /dev/disk/by-id/…).
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("restore target: %w", err)
	case isBlockDevice(fi.Mode()):
		if !opts.Force {
			return nil, fmt.Errorf("restore target %s is a block device: %w (pass --force to overwrite it)", path, ErrTargetExists)
		}
		return openDevice(path, size)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", path, err)
	}
	return createIn(dir, path, filepath.Base(path), size, opts)
}

// CreateFileTargetIn is CreateFileTarget for the regular file name inside
// root: every path is resolved within root, so no symlink, in name or put
// there while the restore runs, makes it write outside. Block devices are
// refused.
func CreateFileTargetIn(root *os.Root, name string, size int64, opts TargetOptions) (*FileTarget, error) {
	path := filepath.Join(root.Name(), name)
	if size < 0 {
		return nil, fmt.Errorf("restore target %s: negative size %d", path, size)
	}
	base := filepath.Base(name)
	if !filepath.IsLocal(name) || base == "." {
		return nil, fmt.Errorf("restore target %s: not a file name inside %s: %w", name, root.Name(), ErrUnsupportedType)
	}
	dir, err := root.Open(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", path, err)
	}
	return createIn(dir, path, base, size, opts)
}

// createIn creates the temporary file of a restore to name in dir, which
// it takes over.
func createIn(dir *os.File, path, name string, size int64, opts TargetOptions) (*FileTarget, error) {
	t := &FileTarget{path: path, size: size, dir: dir, name: name, replace: opts.Force, fresh: true}
	if err := t.checkExisting(opts.Force); err != nil {
		t.closeDir()
		return nil, err
	}
	if err := t.createTemp(); err != nil {
		t.closeDir()
		return nil, err
	}
	if err := t.f.Truncate(size); err != nil {
		_ = t.f.Close()
		_ = t.discard()
		t.closeDir()
		return nil, fmt.Errorf("truncate %s to %d: %w", path, size, err)
	}
	return t, nil
}

// checkExisting refuses early what Close would refuse or overwrite
// badly: an existing name without force, anything but a regular file or
// symlink with it.
func (t *FileTarget) checkExisting(force bool) error {
	var st unix.Stat_t
	err := fdControl(t.dir, func(fd int) error {
		return unix.Fstatat(fd, t.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore target %s: %w", t.path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK:
		if !force {
			return fmt.Errorf("restore target %s: %w (pass --force to overwrite it)", t.path, ErrTargetExists)
		}
		return nil
	default:
		return fmt.Errorf("restore target %s: %w", t.path, ErrUnsupportedType)
	}
}

// createTemp creates the temporary file exclusively under a fresh random
// name; 0600 because a volume image holds everything the volume did.
func (t *FileTarget) createTemp() error {
	prefix := t.name
	if len(prefix) > 200 { // the random part and suffix must fit in NAME_MAX
		prefix = prefix[:200]
	}
	for range 100 {
		tmp := "." + prefix + "." + strconv.FormatUint(rand.Uint64(), 36) + PartialSuffix
		var fd int
		err := fdControl(t.dir, func(dfd int) error {
			var err error
			fd, err = unix.Openat(dfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create restore target %s: %w", t.path, err)
		}
		t.f, t.tmp = os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(t.path), tmp)), tmp
		return nil
	}
	return fmt.Errorf("create restore target %s: no free temporary name", t.path)
}

// publish moves the complete file to its name and makes the rename
// durable. Without replace, RENAME_NOREPLACE makes a name that appeared
// meanwhile (another restore finished first) an error, not a loss.
func (t *FileTarget) publish() error {
	err := fdControl(t.dir, func(fd int) error {
		if t.replace {
			return unix.Renameat(fd, t.tmp, fd, t.name)
		}
		err := unix.Renameat2(fd, t.tmp, fd, t.name, unix.RENAME_NOREPLACE)
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
		// A file system without RENAME_NOREPLACE: link(2) refuses an
		// existing name just as atomically.
		if err := unix.Linkat(fd, t.tmp, fd, t.name, 0); err != nil {
			return err
		}
		return unix.Unlinkat(fd, t.tmp, 0)
	})
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("restore target %s: %w: another restore or process created it meanwhile (pass --force to overwrite it)", t.path, ErrTargetExists)
	}
	if err != nil {
		return fmt.Errorf("move restored file into place at %s: %w", t.path, err)
	}
	t.tmp = ""
	if err := t.dir.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", t.path, err)
	}
	return nil
}

// discard removes the temporary file, if any.
func (t *FileTarget) discard() error {
	if t.dir == nil || t.tmp == "" {
		return nil
	}
	err := fdControl(t.dir, func(fd int) error { return unix.Unlinkat(fd, t.tmp, 0) })
	t.tmp = ""
	if err != nil {
		return fmt.Errorf("remove the partial restore of %s: %w", t.path, err)
	}
	return nil
}

func (t *FileTarget) closeDir() {
	if t.dir != nil {
		_ = t.dir.Close()
		t.dir = nil
	}
}

func openDevice(path string, size int64) (*FileTarget, error) {
	// O_EXCL on a block device fails with EBUSY while it is mounted or held
	// by device mapper, md or another exclusive opener.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("open restore target %s: device in use (mounted?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open restore target: %w", err)
	}
	devSize, err := deviceSize(f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if devSize < size {
		_ = f.Close()
		return nil, fmt.Errorf("restore target %s: %w: device has %d bytes, volume needs %d",
			path, ErrTargetTooSmall, devSize, size)
	}
	return &FileTarget{f: f, path: path, size: size, isDev: true}, nil
}
