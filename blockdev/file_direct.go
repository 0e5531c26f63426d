package blockdev

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment O_DIRECT asks of offsets, lengths and
// buffers: the logical block size of any disk in use, 512 or 4096.
const directAlign = 4096

// directReader reads a source around the page cache where it can.
type directReader struct {
	f       *os.File
	refused atomic.Bool // set once the kernel refused a direct read
}

// openDirect opens f again with O_DIRECT, through /proc/self/fd so that it
// is the same inode whatever happens to the path. nil where the kernel or
// file system refuses (tmpfs, some FUSE).
func openDirect(f *os.File) *directReader {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return &directReader{f: os.NewFile(uintptr(fd), f.Name())}
}

// readAt reads p at off directly when both are aligned; ok is false when
// the caller must read through the page cache instead.
func (d *directReader) readAt(p []byte, off int64) (n int, ok bool, err error) {
	if d == nil || d.refused.Load() || len(p) == 0 || off%directAlign != 0 || len(p)%directAlign != 0 ||
		uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign != 0 {
		return 0, false, nil
	}
	n, err = d.f.ReadAt(p, off)
	if errors.Is(err, unix.EINVAL) && n == 0 {
		d.refused.Store(true)
		return 0, false, nil
	}
	return n, true, err
}

func (d *directReader) close() {
	if d != nil {
		_ = d.f.Close()
	}
}
