package fusefs

import (
	"context"
	"errors"
	"hash/fnv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cairn/dedup"
)

// linkNode is a fixed symlink: by-id/<ID> → ../<source>/<checkpoint dir>.
type linkNode struct {
	fs.Inode
	f      *fsys
	target string
	mtime  time.Time
}

// latestNode is <source>/latest → the source's newest checkpoint directory,
// read from the catalog at each readlink.
type latestNode struct {
	fs.Inode
	f      *fsys
	source string
}

var (
	_ fs.NodeReadlinker = (*linkNode)(nil)
	_ fs.NodeGetattrer  = (*linkNode)(nil)
	_ fs.NodeReadlinker = (*latestNode)(nil)
	_ fs.NodeGetattrer  = (*latestNode)(nil)
)

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(n.target), 0
}

func (n *linkNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.linkAttr(&out.Attr, n.target, n.mtime)
	return 0
}

// latest reads the catalog fresh (at most once per refresh interval), so
// the link follows new checkpoints without a listing.
func (n *latestNode) latest(ctx context.Context) (*entry, syscall.Errno) {
	cat, err := n.f.catalog(ctx, true)
	if err != nil {
		return nil, n.f.errno(err, "list checkpoints")
	}
	sd := cat.byName[n.source]
	if sd == nil {
		return nil, syscall.ENOENT
	}
	return sd.latest(), 0
}

func (n *latestNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	e, errno := n.latest(ctx)
	if errno != 0 {
		return nil, errno
	}
	return []byte(e.dir), 0
}

func (n *latestNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, errno := n.latest(ctx)
	if errno != 0 {
		return errno
	}
	n.f.linkAttr(&out.Attr, e.dir, e.cp.CreatedAt)
	out.SetTimeout(latestTimeout)
	return 0
}

// ino derives a stable inode number from a node's identity, so that a node
// looked up twice (or through two paths) is one inode. It avoids 0, 1 (the
// root) and the top half, where go-fuse numbers nodes it names itself.
func ino(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	v := h.Sum64() &^ (1 << 63)
	if v < 2 {
		v += 2
	}
	return v
}

// errno translates an error to what the kernel is told: the one place
// errors cross the FUSE boundary. Interrupted requests are EINTR and not
// logged; a checkpoint that vanished (forgotten) is ENOENT; every other
// failure is logged and reported as EIO.
func (f *fsys) errno(err error, format string, args ...any) syscall.Errno {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, dedup.ErrCheckpointNotFound):
		return syscall.ENOENT
	}
	f.logf(format+": %v", append(args, err)...)
	return syscall.EIO
}
