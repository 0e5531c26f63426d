package bigbuf

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
)

// primeHeap allocates n bytes advised as huge pages (Make) and frees them
// with one collection; see PrimeHeap. The range is never touched: it
// costs address space, not memory.
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
	b := Make(n)
	runtime.KeepAlive(b) // and no further: the collection frees it
	runtime.GC()
}
