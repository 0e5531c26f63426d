package fusefs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cairn/blockdev/partition"
	"cairn/dedup"
)

// cpNode is one checkpoint's directory. Its files exist once the volume is
// opened, on the first lookup or listing.
type cpNode struct {
	fs.Inode
	f *fsys
	e *entry
}

var (
	_ fs.NodeReaddirer = (*cpNode)(nil)
	_ fs.NodeLookuper  = (*cpNode)(nil)
	_ fs.NodeGetattrer = (*cpNode)(nil)
)

// checkpointInode returns the inode of e's directory and fills out.
func (n *sourceNode) checkpointInode(ctx context.Context, e *entry, out *fuse.EntryOut) *fs.Inode {
	n.f.dirAttr(&out.Attr, e.cp.CreatedAt)
	return n.NewInode(ctx, &cpNode{f: n.f, e: e}, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: ino("checkpoint", e.cp.ID)})
}

func (n *cpNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.dirAttr(&out.Attr, n.e.cp.CreatedAt)
	return 0
}

func (n *cpNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	v, err := n.f.volume(ctx, n.e)
	if err != nil {
		return nil, n.f.errno(err, "open %s", n.e.path())
	}
	ents := make([]fuse.DirEntry, 0, len(v.windows)+1)
	for _, w := range v.windows {
		ents = append(ents, fuse.DirEntry{Name: w.name, Mode: fuse.S_IFREG, Ino: ino("file", n.e.cp.ID, w.name)})
	}
	ents = append(ents, fuse.DirEntry{Name: infoFile, Mode: fuse.S_IFREG, Ino: ino("file", n.e.cp.ID, infoFile)})
	return fs.NewListDirStream(ents), 0
}

func (n *cpNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, err := n.f.volume(ctx, n.e)
	if err != nil {
		return nil, n.f.errno(err, "open %s", n.e.path())
	}
	id := fs.StableAttr{Mode: fuse.S_IFREG, Ino: ino("file", n.e.cp.ID, name)}
	if name == infoFile {
		node := &infoNode{f: n.f, data: v.info, mtime: v.mtime}
		node.attr(&out.Attr)
		return n.NewInode(ctx, node, id), 0
	}
	for _, w := range v.windows {
		if w.name == name {
			node := &fileNode{f: n.f, v: v, w: w}
			node.attr(&out.Attr)
			return n.NewInode(ctx, node, id), 0
		}
	}
	return nil, syscall.ENOENT
}

// window is the part of a volume one file shows.
type window struct {
	name      string
	off, size int64
}

// volume is an opened checkpoint, shared by its files and their handles.
type volume struct {
	rd      *dedup.Reader
	bs      int64
	mtime   time.Time
	windows []window // disk.raw, then partN.raw by number
	info    []byte   // info.json
}

// volumeSlot holds a volume once opened; its mutex makes concurrent first
// lookups open the checkpoint once.
type volumeSlot struct {
	mu sync.Mutex
	v  *volume
}

// volume opens e's checkpoint, or returns it if open. A failure is not
// remembered: the next lookup tries again.
func (f *fsys) volume(ctx context.Context, e *entry) (*volume, error) {
	f.volMu.Lock()
	slot := f.vols[e.cp.ID]
	if slot == nil {
		slot = &volumeSlot{}
		f.vols[e.cp.ID] = slot
	}
	f.volMu.Unlock()
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.v != nil {
		return slot.v, nil
	}
	rd, err := f.repo.OpenCheckpoint(ctx, e.cp.ID)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", e.cp.ID, err)
	}
	v, err := newVolume(ctx, rd, e, f.logf)
	if err != nil {
		return nil, err
	}
	// The first reads of each pack go faster with its headers already
	// read (Reader.WarmHeaders); the warming ends with the mount.
	go rd.WarmHeaders(f.life)
	slot.v = v
	return v, nil
}

// forgetVolumes drops the open volumes of checkpoints no longer listed
// (forgotten); open files keep theirs until closed.
func (f *fsys) forgetVolumes(c *catalog) {
	f.volMu.Lock()
	defer f.volMu.Unlock()
	for id := range f.vols {
		if c.byID[id] == nil {
			delete(f.vols, id)
		}
	}
}

// info is the content of info.json.
type info struct {
	Checkpoint     *dedup.Checkpoint `json:"checkpoint"`
	Path           string            `json:"path"`
	Scheme         partition.Scheme  `json:"partition_scheme,omitempty"`
	SectorSize     int               `json:"sector_size,omitempty"`
	DiskGUID       string            `json:"disk_guid,omitempty"`
	PartitionError string            `json:"partition_error,omitempty"`
	Files          []fileInfo        `json:"files"`
}

type fileInfo struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	*partition.Partition
}

// newVolume reads rd's partition table and lays out the checkpoint's
// files. A missing or corrupt table leaves only disk.raw (a corrupt one is
// logged and reported in info.json); a read error fails.
func newVolume(ctx context.Context, rd *dedup.Reader, e *entry, logf func(string, ...any)) (*volume, error) {
	cp := rd.Checkpoint()
	v := &volume{rd: rd, bs: int64(rd.BlockSize()), mtime: cp.CreatedAt}
	v.windows = []window{{name: diskFile, size: rd.Size()}}
	in := info{Checkpoint: cp, Path: e.path(), Files: []fileInfo{{File: diskFile, Size: rd.Size()}}}
	t, err := partition.Read(ctxReader{ctx, rd}, rd.Size())
	switch {
	case err == nil:
		in.Scheme, in.SectorSize, in.DiskGUID = t.Scheme, t.SectorSize, t.DiskGUID
		for i := range t.Partitions {
			p := &t.Partitions[i]
			name := fmt.Sprintf("part%d.raw", p.Number)
			v.windows = append(v.windows, window{name: name, off: p.Offset, size: p.Size})
			in.Files = append(in.Files, fileInfo{File: name, Offset: p.Offset, Size: p.Size, Partition: p})
		}
	case errors.Is(err, partition.ErrNoTable):
	case errors.Is(err, partition.ErrCorrupt):
		logf("%s: %v; showing disk.raw only", e.path(), err)
		in.PartitionError = err.Error()
	default:
		return nil, fmt.Errorf("read partition table of %s: %w", cp.ID, err)
	}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("info.json of %s: %w", cp.ID, err)
	}
	v.info = append(b, '\n')
	return v, nil
}

// ctxReader is an io.ReaderAt over a checkpoint, for the partition parser.
type ctxReader struct {
	ctx context.Context
	rd  *dedup.Reader
}

func (r ctxReader) ReadAt(p []byte, off int64) (int, error) { return r.rd.ReadAtContext(r.ctx, p, off) }
