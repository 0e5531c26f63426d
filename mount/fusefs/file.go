package fusefs

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fileNode is disk.raw or a partN.raw: a window of a volume.
type fileNode struct {
	fs.Inode
	f *fsys
	v *volume
	w window
}

// infoNode is info.json, built when the volume was opened.
type infoNode struct {
	fs.Inode
	f     *fsys
	data  []byte
	mtime time.Time
}

var (
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*infoNode)(nil)
	_ fs.NodeOpener    = (*infoNode)(nil)
	_ fs.NodeReader    = (*infoNode)(nil)
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
)

func (n *fileNode) attr(a *fuse.Attr) {
	n.f.fileAttr(a, n.w.size, n.v.mtime)
	a.Blksize = uint32(min(n.v.bs, maxRead))
}

func (n *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	return 0
}

// Open returns a handle with its own read-ahead state. The content never
// changes, so the kernel may keep its page cache across opens.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	return newHandle(n.f, n.v, n.w), fuse.FOPEN_KEEP_CACHE, 0
}

func (n *infoNode) attr(a *fuse.Attr) { n.f.fileAttr(a, int64(len(n.data)), n.mtime) }

func (n *infoNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	return 0
}

func (n *infoNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *infoNode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(n.data)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(n.data[off:min(int64(len(n.data)), off+int64(len(dest)))]), 0
}

func (f *fsys) fileAttr(a *fuse.Attr, size int64, t time.Time) {
	a.Mode = fuse.S_IFREG | f.fileMode
	a.Size = uint64(size)
	a.Nlink = 1
	f.setOwner(a)
	setTimes(a, t)
}

// Read reads from the handle's window through the checkpoint's reader (a
// read spanning several blocks fetches them in parallel first), and lets a
// sequential reader's next blocks be fetched in the background.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= h.w.size {
		return fuse.ReadResultData(nil), 0
	}
	p := dest[:min(int64(len(dest)), h.w.size-off)]
	abs := h.w.off + off
	h.v.warmRange(ctx, abs, int64(len(p)))
	n, err := h.v.rd.ReadAtContext(ctx, p, abs)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		return nil, h.f.errno(err, "read %s at %d", h.w.name, off)
	}
	h.observe(abs, int64(n))
	return fuse.ReadResultData(p[:n]), 0
}
