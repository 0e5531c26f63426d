//go:build ceph

package rados

// #cgo LDFLAGS: -lrados
// #include <errno.h>
// #include <stdlib.h>
// #include <rados/librados.h>
import "C"

import (
	"syscall"
	"unsafe"

	"github.com/ceph/go-ceph/rados"
)

// writeFullEmpty makes oid an empty object atomically (write_full of zero
// bytes), which go-ceph's WriteFull cannot express: it indexes data[0].
func writeFullEmpty(io *rados.IOContext, oid string) error {
	coid := C.CString(oid)
	defer C.free(unsafe.Pointer(coid))
	ret := C.rados_write_full(C.rados_ioctx_t(io.Pointer()), coid, nil, 0)
	if ret == -C.ENOENT {
		return rados.ErrNotFound
	}
	if ret < 0 {
		return syscall.Errno(-ret)
	}
	return nil
}
