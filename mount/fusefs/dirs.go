package fusefs

import (
	"context"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The directories above the checkpoints: the root, one per source, by-id.
// They hold no state of their own beyond names: each call looks at the
// current catalog, so new checkpoints show up.

type rootNode struct {
	fs.Inode
	f *fsys
}

type sourceNode struct {
	fs.Inode
	f    *fsys
	name string
}

type byIDNode struct {
	fs.Inode
	f *fsys
}

var (
	_ fs.NodeReaddirer = (*rootNode)(nil)
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
	_ fs.NodeReaddirer = (*sourceNode)(nil)
	_ fs.NodeLookuper  = (*sourceNode)(nil)
	_ fs.NodeGetattrer = (*sourceNode)(nil)
	_ fs.NodeReaddirer = (*byIDNode)(nil)
	_ fs.NodeLookuper  = (*byIDNode)(nil)
	_ fs.NodeGetattrer = (*byIDNode)(nil)
)

func (n *rootNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.dirAttr(&out.Attr, n.f.now)
	return 0
}

func (n *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	cat, err := n.f.catalog(ctx, true)
	if err != nil {
		return nil, n.f.errno(err, "list /")
	}
	ents := []fuse.DirEntry{{Name: byIDDir, Mode: fuse.S_IFDIR, Ino: ino("by-id")}}
	for _, s := range cat.sources {
		ents = append(ents, fuse.DirEntry{Name: s.name, Mode: fuse.S_IFDIR, Ino: ino("source", s.name)})
	}
	return fs.NewListDirStream(ents), 0
}

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == byIDDir {
		n.f.dirAttr(&out.Attr, n.f.now)
		return n.NewInode(ctx, &byIDNode{f: n.f}, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: ino("by-id")}), 0
	}
	sd, errno := n.f.findSource(ctx, name)
	if errno != 0 {
		return nil, errno
	}
	n.f.dirAttr(&out.Attr, sd.latest().cp.CreatedAt)
	return n.NewInode(ctx, &sourceNode{f: n.f, name: name}, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: ino("source", name)}), 0
}

func (n *sourceNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	t := n.f.now
	if cat, err := n.f.catalog(ctx, false); err == nil && cat.byName[n.name] != nil {
		t = cat.byName[n.name].latest().cp.CreatedAt
	}
	n.f.dirAttr(&out.Attr, t)
	return 0
}

func (n *sourceNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	cat, err := n.f.catalog(ctx, true)
	if err != nil {
		return nil, n.f.errno(err, "list %s", n.name)
	}
	sd := cat.byName[n.name]
	if sd == nil {
		return nil, syscall.ENOENT
	}
	ents := make([]fuse.DirEntry, 0, len(sd.entries)+1)
	for _, e := range sd.entries {
		ents = append(ents, fuse.DirEntry{Name: e.dir, Mode: fuse.S_IFDIR, Ino: ino("checkpoint", e.cp.ID)})
	}
	ents = append(ents, fuse.DirEntry{Name: latestLink, Mode: fuse.S_IFLNK, Ino: ino("latest", n.name)})
	return fs.NewListDirStream(ents), 0
}

func (n *sourceNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == latestLink {
		sd, errno := n.f.findSource(ctx, n.name)
		if errno != 0 {
			return nil, errno
		}
		e := sd.latest()
		n.f.linkAttr(&out.Attr, e.dir, e.cp.CreatedAt)
		out.SetEntryTimeout(latestTimeout)
		out.SetAttrTimeout(latestTimeout)
		return n.NewInode(ctx, &latestNode{f: n.f, source: n.name}, fs.StableAttr{Mode: fuse.S_IFLNK, Ino: ino("latest", n.name)}), 0
	}
	e, errno := n.f.findEntry(ctx, func(c *catalog) *entry {
		if sd := c.byName[n.name]; sd != nil {
			return sd.byName[name]
		}
		return nil
	})
	if errno != 0 {
		return nil, errno
	}
	return n.checkpointInode(ctx, e, out), 0
}

func (n *byIDNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.dirAttr(&out.Attr, n.f.now)
	return 0
}

func (n *byIDNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	cat, err := n.f.catalog(ctx, true)
	if err != nil {
		return nil, n.f.errno(err, "list by-id")
	}
	var ents []fuse.DirEntry
	for _, s := range cat.sources {
		for _, e := range s.entries {
			ents = append(ents, fuse.DirEntry{Name: e.cp.ID, Mode: fuse.S_IFLNK, Ino: ino("id", e.cp.ID)})
		}
	}
	return fs.NewListDirStream(ents), 0
}

func (n *byIDNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	e, errno := n.f.findEntry(ctx, func(c *catalog) *entry { return c.byID[name] })
	if errno != 0 {
		return nil, errno
	}
	target := "../" + e.path()
	n.f.linkAttr(&out.Attr, target, e.cp.CreatedAt)
	return n.NewInode(ctx, &linkNode{f: n.f, target: target, mtime: e.cp.CreatedAt}, fs.StableAttr{Mode: fuse.S_IFLNK, Ino: ino("id", name)}), 0
}

// findSource finds a source directory, listing the checkpoints again if it
// is not in the catalog (it may be new).
func (f *fsys) findSource(ctx context.Context, name string) (*sourceDir, syscall.Errno) {
	var sd *sourceDir
	_, errno := f.findEntry(ctx, func(c *catalog) *entry {
		if sd = c.byName[name]; sd != nil {
			return sd.latest()
		}
		return nil
	})
	return sd, errno
}

// findEntry applies find to the catalog, and once more to a refreshed one
// when it finds nothing.
func (f *fsys) findEntry(ctx context.Context, find func(*catalog) *entry) (*entry, syscall.Errno) {
	for _, fresh := range []bool{false, true} {
		cat, err := f.catalog(ctx, fresh)
		if err != nil {
			return nil, f.errno(err, "list checkpoints")
		}
		if e := find(cat); e != nil {
			return e, 0
		}
	}
	return nil, syscall.ENOENT
}

func (f *fsys) dirAttr(a *fuse.Attr, t time.Time) {
	a.Mode = fuse.S_IFDIR | f.dirMode
	a.Nlink = 2
	f.setOwner(a)
	setTimes(a, t)
}

// linkAttr: a symlink's own bits are never checked, so 0777 as everywhere.
func (f *fsys) linkAttr(a *fuse.Attr, target string, t time.Time) {
	a.Mode = fuse.S_IFLNK | 0o777
	a.Size = uint64(len(target))
	a.Nlink = 1
	f.setOwner(a)
	setTimes(a, t)
}

// setOwner sets the owner explicitly: go-fuse fills in fs.Options.GID only
// for nodes whose UID it also fills in, which it skips when mounting as
// root (UID 0), so a named group would be lost.
func (f *fsys) setOwner(a *fuse.Attr) {
	a.Uid, a.Gid = f.uid, f.gid
}

func setTimes(a *fuse.Attr, t time.Time) { a.SetTimes(&t, &t, &t) }
