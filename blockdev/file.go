package blockdev

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// File is a Source backed by a regular file (a disk image) or a block device.
type File struct {
	f     *os.File
	path  string
	size  int64
	isDev bool
	// direct reads whole blocks around the page cache (see ReadAt).
	direct *directReader
}

var _ Source = (*File)(nil)

// OpenFile opens a regular file or a block device read-only as a Source.
// The size is taken once, at open: a volume must not change size during a
// backup, and extents past the size seen here are ignored.
func OpenFile(path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	return newFile(f, abs)
}

// newFile makes a Source of f, opened from path, or closes it.
func newFile(f *os.File, path string) (*File, error) {
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	src := &File{f: f, path: path}
	switch {
	case fi.Mode().IsRegular():
		src.size = fi.Size()
	case isBlockDevice(fi.Mode()):
		src.isDev = true
		if src.size, err = deviceSize(f); err != nil {
			_ = f.Close()
			return nil, err
		}
	default:
		_ = f.Close()
		return nil, fmt.Errorf("source %s (%s): %w", path, fi.Mode().Type(), ErrUnsupportedType)
	}
	src.direct = openDirect(f)
	return src, nil
}

// OpenFileIn is OpenFile for name inside root: its directories are
// resolved within root, and name itself must not be a symlink (ErrSymlink),
// so nothing placed in root can make a backup read a file outside it.
func OpenFileIn(root *os.Root, name string) (*File, error) {
	path := filepath.Join(root.Name(), name)
	dir, err := root.Open(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", path, err)
	}
	defer dir.Close()
	var fd int
	err = fdControl(dir, func(dfd int) error {
		var err error
		// O_NONBLOCK: opening a FIFO placed there must not hang the
		// backup (newFile refuses it); reads of files and devices block
		// again below.
		fd, err = unix.Openat(dfd, filepath.Base(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err == nil {
			if err = unix.SetNonblock(fd, false); err != nil {
				unix.Close(fd)
			}
		}
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("source %s: %w", path, ErrSymlink)
	}
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", path, err)
	}
	return newFile(os.NewFile(uintptr(fd), path), path)
}

// ReadAt reads with pread, so concurrent calls do not share a file offset.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if n, ok, err := s.direct.readAt(p, off); ok {
		return n, err
	}
	return s.f.ReadAt(p, off)
}

// Size is the size of the file or device when it was opened.
func (s *File) Size() int64 { return s.size }

// Name is the absolute path the source was opened with.
func (s *File) Name() string { return s.path }

// Close closes the underlying file.
func (s *File) Close() error {
	s.direct.close()
	return s.f.Close()
}

// Allocated returns the data extents of a regular file, found with
// SEEK_DATA/SEEK_HOLE. A block device, or a filesystem that cannot report
// holes, yields one extent covering the whole volume. Reporting too much is
// always safe (the extra bytes are read and deduplicated as zeros), so any
// doubt is resolved towards data.
func (s *File) Allocated(ctx context.Context) ([]Extent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.size == 0 {
		return nil, nil
	}
	if s.isDev {
		return []Extent{{Off: 0, Len: s.size}}, nil
	}

	// Control keeps the descriptor from being closed under the walk.
	rc, err := s.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("allocated %s: %w", s.path, err)
	}
	var ext []Extent
	var walkErr error
	err = rc.Control(func(fd uintptr) {
		ext, walkErr = dataExtents(ctx, int(fd), s.path, s.size)
	})
	if err != nil {
		return nil, fmt.Errorf("allocated %s: %w", s.path, err)
	}
	return ext, walkErr
}

// dataExtents walks [0, size) of fd with SEEK_DATA/SEEK_HOLE. lseek moves
// the shared file offset, which is harmless because reads use pread.
func dataExtents(ctx context.Context, fd int, path string, size int64) ([]Extent, error) {
	var ext []Extent
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			// No data at or after off: the rest of the file is a hole.
			return ext, nil
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
			// The filesystem does not know SEEK_DATA (old kernels, some
			// network and FUSE filesystems): assume the whole file is data.
			return []Extent{{Off: 0, Len: size}}, nil
		case err != nil:
			return nil, fmt.Errorf("seek data %s at %d: %w", path, off, err)
		}
		if data >= size {
			// The file grew since it was opened; only the first size bytes
			// belong to the volume.
			return ext, nil
		}

		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		switch {
		case errors.Is(err, unix.ENXIO):
			// The file shrank between the two seeks. Keep the tail as
			// data: it will read short and the backup reports that.
			hole = size
		case err != nil:
			return nil, fmt.Errorf("seek hole %s at %d: %w", path, data, err)
		}
		if hole <= data || hole > size {
			// No progress (a concurrent truncate) or data past the size
			// seen at open: clamp, and never loop forever.
			hole = size
		}
		ext = appendMerged(ext, Extent{Off: data, Len: hole - data})
		off = hole
	}
	return ext, nil
}

// appendMerged appends e to sorted extents, merging it into the last one when
// they overlap or touch.
func appendMerged(ext []Extent, e Extent) []Extent {
	if n := len(ext); n > 0 && e.Off <= ext[n-1].End() {
		if end := e.End(); end > ext[n-1].End() {
			ext[n-1].Len = end - ext[n-1].Off
		}
		return ext
	}
	return append(ext, e)
}

// AlignExtents widens each extent outward to blockSize boundaries, clamps it
// to size and merges the results. Backup reads whole blocks, so a block that
// an extent only touches must still be read. The input is not modified and
// need not be sorted; empty extents are dropped. It panics if blockSize is
// not positive, which is a programming error.
func AlignExtents(ext []Extent, blockSize int64, size int64) []Extent {
	if blockSize <= 0 {
		panic(fmt.Sprintf("blockdev: AlignExtents with block size %d", blockSize))
	}
	sorted := slices.Clone(ext)
	slices.SortFunc(sorted, func(a, b Extent) int { return cmp.Compare(a.Off, b.Off) })

	var out []Extent
	for _, e := range sorted {
		if e.Len <= 0 || e.Off >= size {
			continue
		}
		start := max(e.Off, 0) / blockSize * blockSize
		// Clamp before rounding up so that End near MaxInt64 cannot overflow.
		end := min(e.End(), size)
		if r := end % blockSize; r != 0 {
			end += blockSize - r
		}
		end = min(end, size)
		out = appendMerged(out, Extent{Off: start, Len: end - start})
	}
	return out
}

func isBlockDevice(m os.FileMode) bool {
	return m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0
}

// deviceSize asks the kernel for a block device's size. Seeking to the end
// is the fallback for devices whose driver lacks BLKGETSIZE64.
func deviceSize(f *os.File) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	var size uint64
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		size, ioctlErr = unix.IoctlGetUint64(int(fd), unix.BLKGETSIZE64)
	}); err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	if ioctlErr == nil {
		return int64(size), nil
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: ioctl BLKGETSIZE64: %v; seek end: %w", f.Name(), ioctlErr, err)
	}
	return end, nil
}
