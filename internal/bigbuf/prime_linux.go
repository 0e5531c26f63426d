package bigbuf

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// primeHeap allocates n bytes, advises the huge pages inside them and
// frees them with one collection; see PrimeHeap. The range is never
// touched: it costs address space, not memory.
func primeHeap(n int) {
	// A 32-bit process may not find that much address space in one piece,
	// and a failed allocation is fatal in Go.
	if strconv.IntSize < 64 {
		return
	}
	// Under strict overcommit (mode 2) the range would be charged against
	// the commit limit for the life of the process: skip it there.
	if mode, err := os.ReadFile("/proc/sys/vm/overcommit_memory"); err != nil || string(bytes.TrimSpace(mode)) == "2" {
		return
	}
	b := make([]byte, n+hugePage)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (hugePage - 1))
	_ = unix.Madvise(b[off:off+n&^(hugePage-1)], unix.MADV_HUGEPAGE)
	runtime.KeepAlive(b) // and no further: the collection frees it
	runtime.GC()
}
