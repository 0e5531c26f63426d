package bigbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge marks the whole huge pages inside b for transparent huge
// pages. It is advice: where the kernel cannot (THP off, memory
// fragmented, the page already touched) b works as before.
func adviseHuge(b []byte) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + uintptr(len(b))) &^ (hugePage - 1)
	if end <= start {
		return
	}
	_ = unix.Madvise(b[start-p:end-p], unix.MADV_HUGEPAGE)
}
