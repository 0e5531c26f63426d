package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// adviseRandom turns off the kernel's read-ahead for reads through f (an
// open of its own: the advice goes with the open file, not the inode). It
// is advice: where it cannot be taken, reads are as before.
func adviseRandom(f *os.File) {
	if c, err := f.SyscallConn(); err == nil {
		_ = c.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), 0, 0, unix.FADV_RANDOM) })
	}
}
