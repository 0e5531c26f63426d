package bigbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// alignHuge returns the n bytes of b (at least n plus hugePage long)
// that start on a huge-page boundary, advised as transparent huge pages.
// It is advice: where the kernel cannot (THP off, memory fragmented, the
// page already touched) the buffer works as before.
func alignHuge(b []byte, n int) []byte {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	off := int((p+hugePage-1)&^(hugePage-1) - p)
	b = b[off : off+n : off+n]
	if whole := n &^ (hugePage - 1); whole > 0 {
		_ = unix.Madvise(b[:whole], unix.MADV_HUGEPAGE)
	}
	return b
}
