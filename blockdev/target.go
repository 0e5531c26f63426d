package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TargetOptions control how CreateFileTarget treats an existing path.
type TargetOptions struct {
	// Force allows overwriting an existing regular file (its old content is
	// discarded) or a block device.
	Force bool
}

// FileTarget is a Target backed by a regular file or a block device.
type FileTarget struct {
	f     *os.File
	path  string
	size  int64
	isDev bool
	// fresh is set when the file was created or truncated to zero at open,
	// so every byte not written since is a hole.
	fresh bool
	// written is set by the first WriteAt: until then a fresh file is all
	// hole and Zero has nothing to do.
	written atomic.Bool
}

var _ Target = (*FileTarget)(nil)

// zeros is never written to, so concurrent Zero calls may share it.
var zeros [1 << 20]byte

// CreateFileTarget opens path for restoring a volume of size bytes.
//
// A missing path is created as a sparse file, so never-written bytes cost no
// disk space. An existing regular file is refused unless opts.Force is set,
// and is then truncated to zero first so that its old content cannot show
// through the holes of the restored volume. A block device always needs
// opts.Force, must hold at least size bytes, and is opened exclusively so
// that a mounted device is refused; its holes must be cleared with Zero.
func CreateFileTarget(path string, size int64, opts TargetOptions) (*FileTarget, error) {
	if size < 0 {
		return nil, fmt.Errorf("restore target %s: negative size %d", path, size)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createFile(path, size)
	case err != nil:
		return nil, fmt.Errorf("restore target: %w", err)
	case fi.Mode().IsRegular():
		if !opts.Force {
			return nil, fmt.Errorf("restore target %s: %w (pass --force to overwrite it)", path, ErrTargetExists)
		}
		return truncateFile(path, size)
	case isBlockDevice(fi.Mode()):
		if !opts.Force {
			return nil, fmt.Errorf("restore target %s is a block device: %w (pass --force to overwrite it)", path, ErrTargetExists)
		}
		return openDevice(path, size)
	default:
		return nil, fmt.Errorf("restore target %s (%s): %w", path, fi.Mode().Type(), ErrUnsupportedType)
	}
}

func createFile(path string, size int64) (*FileTarget, error) {
	// O_EXCL: another process creating the same path between Stat and here
	// must not be overwritten. 0600 because a volume image holds everything
	// the volume did.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("restore target %s: %w (pass --force to overwrite it)", path, ErrTargetExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create restore target: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("truncate %s to %d: %w", path, size, err)
	}
	return &FileTarget{f: f, path: path, size: size, fresh: true}, nil
}

func truncateFile(path string, size int64) (*FileTarget, error) {
	// O_TRUNC drops every old block before the file is extended, so the
	// extension is all hole and no old byte survives.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		return nil, fmt.Errorf("open restore target: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("truncate %s to %d: %w", path, size, err)
	}
	return &FileTarget{f: f, path: path, size: size, fresh: true}, nil
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

// WriteAt writes with pwrite, so concurrent calls do not share a file
// offset. Writes past the volume size are refused: on a larger device they
// would clobber bytes that are not part of the restore.
func (t *FileTarget) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int64(len(p)) > t.size-off {
		return 0, fmt.Errorf("write %s at %d+%d: outside volume of %d bytes", t.path, off, len(p), t.size)
	}
	// Set before the write so that a concurrent Zero never skips a range on
	// the belief that nothing was written yet.
	t.written.Store(true)
	return t.f.WriteAt(p, off)
}

// Zero makes [off, off+length) read as zeros. The restorer calls it for the
// holes of the volume, which it does not write. On a file target that is
// still all hole it does nothing; otherwise it punches a hole. On a block
// device it asks the device to zero the range (BLKZEROOUT), which thin
// provisioned storage can do without writing, and writes zeros if that
// fails.
func (t *FileTarget) Zero(off, length int64) error {
	if off < 0 || length < 0 || length > t.size-off {
		return fmt.Errorf("zero %s at %d+%d: outside volume of %d bytes", t.path, off, length, t.size)
	}
	if length == 0 {
		return nil
	}
	if t.isDev {
		return t.zeroDevice(off, length)
	}
	if t.fresh && !t.written.Load() {
		return nil
	}
	err := t.control(func(fd int) error {
		// A range that is already a hole needs nothing, and skipping it
		// keeps the file sparse where punching is unsupported.
		if isHole(fd, off, length) {
			return nil
		}
		return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	})
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return t.writeZeros(off, length)
	}
	if err != nil {
		return fmt.Errorf("punch hole %s at %d+%d: %w", t.path, off, length, err)
	}
	return nil
}

// isHole reports whether fd has no data in [off, off+length). Any doubt
// (SEEK_DATA unsupported, an error) answers false.
func isHole(fd int, off, length int64) bool {
	data, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return true
	}
	return err == nil && data >= off+length
}

func (t *FileTarget) zeroDevice(off, length int64) error {
	// The kernel also drops the page cache of the range, so data written
	// earlier with WriteAt cannot be flushed over the zeros later.
	rng := [2]uint64{uint64(off), uint64(length)}
	err := t.control(func(fd int) error {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&rng)))
		if errno != 0 {
			return errno
		}
		return nil
	})
	if err == nil {
		return nil
	}
	// EINVAL (a range not aligned to 512 bytes), EOPNOTSUPP, or a driver
	// without the ioctl: plain writes work everywhere, and a real I/O
	// error will show up there too.
	return t.writeZeros(off, length)
}

func (t *FileTarget) writeZeros(off, length int64) error {
	for length > 0 {
		n := min(length, int64(len(zeros)))
		if _, err := t.f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("write zeros %s at %d: %w", t.path, off, err)
		}
		off += n
		length -= n
	}
	return nil
}

// control runs fn on the descriptor while holding it open against Close.
func (t *FileTarget) control(fn func(fd int) error) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// Close flushes the target to stable storage and closes it. A restore is not
// done until Close returns nil.
func (t *FileTarget) Close() error {
	syncErr := t.f.Sync()
	closeErr := t.f.Close()
	if syncErr != nil {
		return fmt.Errorf("sync %s: %w", t.path, syncErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close %s: %w", t.path, closeErr)
	}
	return nil
}
