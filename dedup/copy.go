package dedup

import (
	"context"
	"fmt"
	"maps"
)

// TagCopiedFrom, on a checkpoint CopyCheckpoint made, names the checkpoint
// it was copied from, so an interrupted copy run can tell what is done.
const TagCopiedFrom = "cairn.copied-from"

// CopyCheckpoint copies checkpoint id of src into dst as a new checkpoint
// of dst with the same source name, size, holes and tags (plus
// TagCopiedFrom). The data is read back and stored anew, under dst's own
// chunk-ID key and data key: no chunk ID, pack or key crosses from one
// repository to the other.
func CopyCheckpoint(ctx context.Context, src, dst *Repository, id string) (*Checkpoint, error) {
	rd, err := src.OpenCheckpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	cp := rd.Checkpoint()
	bs := int64(cp.BlockSize)
	var alloc []Extent
	for off := int64(0); off < cp.Size; off += bs {
		if rd.IsHole(off) {
			continue
		}
		n := min(bs, cp.Size-off)
		if k := len(alloc) - 1; k >= 0 && alloc[k].Off+alloc[k].Len == off {
			alloc[k].Len += n
		} else {
			alloc = append(alloc, Extent{Off: off, Len: n})
		}
	}
	if alloc == nil {
		alloc = []Extent{} // all holes: read nothing
	}
	tags := maps.Clone(cp.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	tags[TagCopiedFrom] = cp.ID
	out, err := dst.Backup(ctx, copySource{rd}, BackupOptions{Allocated: alloc, Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("copy checkpoint %s: %w", cp.ID, err)
	}
	return out, nil
}

// copySource reads a checkpoint as a backup source.
type copySource struct{ rd *Reader }

func (s copySource) ReadAt(p []byte, off int64) (int, error) { return s.rd.ReadAt(p, off) }
func (s copySource) Size() int64                             { return s.rd.Size() }
func (s copySource) Name() string                            { return s.rd.Checkpoint().Source }
