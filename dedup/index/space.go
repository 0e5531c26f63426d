package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// badger writes its write-ahead log and new tables through memory-mapped
// files that it extends sparsely. On a full file system the kernel can give
// such a page no block and answers the write with SIGBUS: the process dies
// inside badger, with no error to return and the index half written. So
// cairn keeps badger away from a full disk (docs/format.md, "The index on a
// full disk"):
//
//   - A command that writes refuses to start, and stops before it writes to
//     the index, when less than the floor is free on the index's file
//     system: ErrNoSpace instead of SIGBUS.
//   - A reserve file, allocated with fallocate(2) while space allows, holds
//     space that only prune and forget, the commands that free space, may
//     take: on a full disk they delete it and have its room for badger's
//     writes; when space is free again, it is allocated anew.
//   - Closing the index when the floor is not free also releases the
//     reserve first, so that badger's final flush has room.
//
// ReserveName is that reserve, a file in the index directory.
const ReserveName = "cairn.reserve"

// spaceLimits returns the reserve's size and the floor of free space for a
// file system of size total: 1/32 and 1/16 of it, within bounds that keep
// small test disks usable and large ones from wasting space.
func spaceLimits(total int64) (reserve, floor int64) {
	reserve = min(max(total/32, 1<<20), 32<<20)
	floor = min(max(total/16, 2<<20), 64<<20)
	return reserve, floor
}

// diskSpace reports the bytes free to an unprivileged writer and the size
// of the file system holding dir.
func diskSpace(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

func noSpaceError(dir string, free, floor int64) error {
	return fmt.Errorf("%w on %s (%s free; cairn needs %s there to update its index safely): free space on that file system, or run `cairn forget` and `cairn prune`, which may use the space cairn reserves for them",
		ErrNoSpace, dir, humanize.IBytes(uint64(max(free, 0))), humanize.IBytes(uint64(floor)))
}

// prepareSpace runs before badger opens dir. A command that frees space
// (freeing) releases the reserve when the floor is not free; any other
// command needs the reserve in place and the floor free, or gets
// ErrNoSpace.
func prepareSpace(dir string, freeing bool, log func(string, ...any)) error {
	free, total, err := diskSpace(dir)
	if err != nil {
		return err
	}
	reserve, floor := spaceLimits(total)
	path := filepath.Join(dir, ReserveName)
	if freeing {
		if free < floor {
			if err := os.Remove(path); err == nil {
				log("%s is nearly full (%s free): released the %s cairn reserves there for prune and forget",
					dir, humanize.IBytes(uint64(free)), humanize.IBytes(uint64(reserve)))
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("release space reserve: %w", err)
			}
		}
		return nil
	}
	if err := ensureReserve(path, reserve); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return noSpaceError(dir, free, floor+reserve)
		}
		return err
	}
	if free, _, err = diskSpace(dir); err != nil {
		return err
	}
	if free < floor {
		return noSpaceError(dir, free, floor)
	}
	return nil
}

// ensureReserve allocates the reserve file at path when it is missing or
// short. fallocate, unlike writing zeros, either gets every block or fails
// with ENOSPC and leaves nothing half done that matters.
func ensureReserve(path string, size int64) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() >= size {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create space reserve: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	f.Close()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("allocate space reserve %s: %w", path, err)
	}
	return nil
}

// checkSpace is called before each write to the index: a backup filling
// the disk with shards stops here with ErrNoSpace, while badger still has
// the floor to write in.
func (x *Index) CheckSpace() error {
	if x.freeing {
		return nil
	}
	free, total, err := diskSpace(x.dir)
	if err != nil {
		return err
	}
	if _, floor := spaceLimits(total); free < floor {
		return noSpaceError(x.dir, free, floor)
	}
	return nil
}

// spaceBeforeClose releases the reserve when the floor is not free, so that
// badger's flush on close has room.
func (x *Index) spaceBeforeClose() {
	free, total, err := diskSpace(x.dir)
	if err != nil {
		return
	}
	if _, floor := spaceLimits(total); free < floor {
		if os.Remove(filepath.Join(x.dir, ReserveName)) == nil {
			x.log("%s is nearly full (%s free): released cairn's space reserve so that the index closes cleanly; free space there before the next backup",
				x.dir, humanize.IBytes(uint64(free)))
		}
	}
}

// spaceAfterClose allocates the reserve again when there is room for it
// and the floor beside it, as after a prune that freed space.
func (x *Index) spaceAfterClose() {
	free, total, err := diskSpace(x.dir)
	if err != nil {
		return
	}
	reserve, floor := spaceLimits(total)
	path := filepath.Join(x.dir, ReserveName)
	if _, err := os.Stat(path); err == nil || free < floor+reserve {
		return
	}
	_ = ensureReserve(path, reserve)
}
