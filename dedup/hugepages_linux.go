package dedup

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// primeHugePages makes the next allocation of about n bytes likely to be
// backed by transparent huge pages. It is for argon2id's blocks (64 MiB by
// default): faulting them in 4 KiB at a time was 16,400 minor faults, the
// largest fixed cost of opening an encrypted repository, and on a VM a
// fault costs more than the hashing of a page. argon2 takes no memory from
// its caller, but Go's page allocator reuses the lowest free range that
// fits: a range allocated here, advised (MADV_HUGEPAGE, which stays with
// the addresses) and freed before argon2 runs is where its blocks land.
// Measured on the 2-core test machine: the derivation took about 200
// faults instead of 16,400 and about 90 ms instead of 190 ms; opening an
// encrypted repository, about 2,700 faults instead of 18,800.
// Where the range is not reused, or the kernel has no huge pages to give,
// nothing is lost but the gain.
func primeHugePages(n int) {
	const huge = 2 << 20
	if n < 2*huge {
		return
	}
	b := make([]byte, n+huge)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (huge - 1))
	_ = unix.Madvise(b[off:off+n&^(huge-1)], unix.MADV_HUGEPAGE)
	runtime.KeepAlive(b) // and no further: the collection frees it
	runtime.GC()
}
