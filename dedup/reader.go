package dedup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"cairn/dedup/pack"
	"cairn/dedup/store"
)

// Reader gives random access to the bytes of one checkpoint. It is what
// restore, the FUSE mount and the NBD export read through. Safe for
// concurrent use.
type Reader struct {
	r  *Repository
	cp *Checkpoint
	bm *BlockMap
}

// OpenCheckpoint opens a checkpoint for reading; id may be a unique prefix.
func (r *Repository) OpenCheckpoint(ctx context.Context, id string) (*Reader, error) {
	cp, bm, err := r.LoadCheckpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, cp: cp, bm: bm}, nil
}

// Checkpoint returns the checkpoint's metadata.
func (rd *Reader) Checkpoint() *Checkpoint { return rd.cp }

// Size is the volume's logical size.
func (rd *Reader) Size() int64 { return rd.cp.Size }

// IsHole reports whether the block holding offset off is a hole.
func (rd *Reader) IsHole(off int64) bool {
	_, ok := rd.bm.Lookup(off / int64(rd.cp.BlockSize))
	return !ok
}

// BlockSize is the checkpoint's block size.
func (rd *Reader) BlockSize() int { return rd.cp.BlockSize }

// ReadAtContext reads len(p) bytes at off. Holes read as zeros.
func (rd *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= rd.cp.Size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > rd.cp.Size-off {
		p = p[:rd.cp.Size-off]
	}
	bs := int64(rd.cp.BlockSize)
	for done := 0; done < len(p); {
		pos := off + int64(done)
		b, within := pos/bs, pos%bs
		n := int(min(bs-within, int64(len(p)-done)))
		if err := rd.readBlock(ctx, b, within, p[done:done+n]); err != nil {
			return done, fmt.Errorf("checkpoint %s at %d: %w", rd.cp.ID, pos, err)
		}
		done += n
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// readBlock fills p from block b at offset within. A read decodes only
// the frames it covers, however it is placed and whatever came before
// (loadRange): a chunk is loaded whole only by Warm, for a reader with
// read-ahead (FUSE), and a read of it while that runs waits for it.
func (rd *Reader) readBlock(ctx context.Context, b, within int64, p []byte) error {
	ref, ok := rd.bm.Lookup(b)
	if !ok {
		clear(p)
		return nil
	}
	return rd.r.loadRange(ctx, ref.ID, rd.bm.Packs[ref.Pack], within, p)
}

// Warm loads the chunk of the block holding off into the chunk cache, for
// a read-ahead: the reads that follow are served from memory. A hole or an
// error is left to those reads.
//
// Where every shard store is local it does nothing: the kernel reads the
// shard files ahead of a sequential reader by itself, and decoding chunks
// whole ahead of the reads cost more than it saved (a copy out of the
// cache, a hash of the whole chunk). A cold 1 GiB read through the FUSE
// mount on the 2-core test machine took 1.0 s of user CPU and reached 577
// to 745 MB/s with it, 0.2 to 0.3 s and 722 to 927 MB/s without.
func (rd *Reader) Warm(ctx context.Context, off int64) {
	if rd.r.allLocal() {
		return
	}
	if ref, ok := rd.bm.Lookup(off / int64(rd.cp.BlockSize)); ok {
		if s, err := rd.r.loadChunk(ctx, ref.ID, rd.bm.Packs[ref.Pack]); err == nil {
			s.release()
		}
	}
}

// WarmHeaders reads the headers of the packs the checkpoint's blocks are
// in, the pack's own and those of its data shards, as many packs as the
// header caches hold, a few at a time, until done or ctx ends. An NBD
// export or a mount calls it in the background when it opens: the first
// read of a chunk then costs two reads of its pack (frame table, frames)
// instead of a chain of up to ten, each a seek on a cold disk (the p99 of
// cold random 4 KiB reads). Errors are left to the reads that need the
// headers.
func (rd *Reader) WarmHeaders(ctx context.Context) {
	// Headers are small reads at both ends of every shard, and the
	// kernel's read-ahead after each (from 256 KiB at a shard's start)
	// queued on the disk ahead of the client's reads: cold random 4 KiB
	// reads had a p99 of 2.2 to 5.3 ms with it, 0.9 to 1.2 ms without.
	ctx = store.Scattered(ctx)
	k := rd.r.cfg.DataShards
	packs := rd.bm.Packs[:min(len(rd.bm.Packs), packHeaderCache, shardHeaderCache/max(k, 1))]
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(warmWorkers)
	for _, p := range packs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if _, err := rd.r.packHeader(gctx, p); err != nil {
				return nil
			}
			for i := range k {
				_, _ = rd.r.obj.Header(gctx, pack.Name(p), i)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// warmWorkers bounds WarmHeaders' reads in flight: enough to keep a disk
// or a Ceph cluster busy, few enough to leave room to the reads a client
// is waiting for.
const warmWorkers = 4

// ReadAt implements io.ReaderAt.
func (rd *Reader) ReadAt(p []byte, off int64) (int, error) {
	return rd.ReadAtContext(context.Background(), p, off)
}

// RestoreOptions steer a restore.
type RestoreOptions struct {
	// InFlight bounds concurrent chunk fetches. The default is 16 where a
	// fetch or a write waits on the network (RADOS stores: peers measured
	// about 3x from 1 to 16; a NetworkTarget), and twice the cores
	// otherwise, where a fetch mostly decodes and more in flight only adds
	// switching (measured on 2 cores: 1.2 s with 4, 1.5 to 1.8 s with 16).
	InFlight int
	// NetworkTarget says every write to the target is a round trip (an
	// RBD image): each chunk is written with one WriteAt instead of frame
	// by frame, at the cost of a chunk-sized buffer per fetch in flight
	// (128 KiB writes held a restore to half of what rbd import reaches).
	NetworkTarget bool
	// Sparse says the target reads zeros wherever nothing was written (a
	// file or image the restore created): runs of zero pages inside data
	// blocks are then not written, so the restored volume is as sparse as
	// its data and the disk writes fewer bytes (the reference image: 8%).
	Sparse bool
	// Zero, if set, is called for each hole range; targets that may hold
	// old data (block devices) must zero them. Files created empty need not.
	Zero     func(off, length int64) error
	Progress func(BackupProgress)
}

// Restore writes checkpoint id to w: data blocks only, in parallel, so a
// sparse target keeps its holes.
func (r *Repository) Restore(ctx context.Context, id string, w io.WriterAt, o RestoreOptions) (*Checkpoint, error) {
	rd, err := r.OpenCheckpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	cp, bm := rd.cp, rd.bm
	inflight := o.InFlight
	if inflight <= 0 {
		inflight = r.defaultInFlight(o.NetworkTarget)
	}
	bs := int64(cp.BlockSize)
	total := cp.AllocatedBytes
	var done, zero atomic.Int64
	stop := startProgress(o.Progress, total, &done, &zero, r.now(), r.now)
	defer stop()
	if o.Zero != nil {
		for _, h := range bm.Holes {
			off := h.Start * bs
			if err := o.Zero(off, min(h.Count*bs, cp.Size-off)); err != nil {
				return nil, fmt.Errorf("zero hole at %d: %w", off, err)
			}
		}
	}
	out := restoreWriter{w: w, whole: o.NetworkTarget}
	if o.Sparse {
		// Every write to a network target is a round trip: only runs
		// long enough to be worth one more are left out there.
		out.zeroRun = zeroPage
		if o.NetworkTarget {
			out.zeroRun = 16 * zeroPage
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inflight)
	// One set of buffers per fetch in flight, reused from block to block:
	// fresh ones cost a page fault per 4 KiB.
	free := make(chan *restoreBuffers, inflight)
	for range inflight {
		free <- &restoreBuffers{}
	}
	for b := int64(0); b < bm.Blocks; b++ {
		ref, ok := bm.Lookup(b)
		if !ok {
			continue
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			rb := <-free
			defer func() { free <- rb }()
			n := min(bs, cp.Size-b*bs)
			if err := r.restoreChunk(gctx, ref.ID, bm.Packs[ref.Pack], out, b*bs, n, rb); err != nil {
				return fmt.Errorf("block %d: %w", b, err)
			}
			done.Add(n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("restore %s: %w", cp.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return cp, nil
}

// defaultInFlight is RestoreOptions.InFlight's default.
func (r *Repository) defaultInFlight(networkTarget bool) int {
	if networkTarget {
		return 16
	}
	if !r.allLocal() {
		return 16
	}
	return min(16, max(4, 2*runtime.GOMAXPROCS(0)))
}

// allLocal reports whether every shard store is a local directory, where a
// fetch mostly decodes and the kernel reads ahead, rather than waiting on
// the network.
func (r *Repository) allLocal() bool {
	for _, s := range r.stores {
		if _, local := s.(*store.Local); !local {
			return false
		}
	}
	return true
}

// restoreBuffers are the reusable buffers of one restore fetch in flight.
type restoreBuffers struct {
	chunk  chunkBuffers // whole blobs
	frames frameBuffers // framed blobs, a few frames at a time
}

// restoreChunk writes the first n bytes of chunk id (in pack hint, says its
// manifest) to w at off. A framed chunk goes frame by frame (writeFramed)
// unless w.whole is set; the chunk cache is neither used nor filled, since
// a restore reads each chunk once.
func (r *Repository) restoreChunk(ctx context.Context, id ChunkID, hint PackID, w restoreWriter, off, n int64, rb *restoreBuffers) error {
	return r.atChunk(ctx, id, hint, func(loc chunkLoc) error {
		if loc.Flags&blobFramed != 0 && !w.whole {
			return r.writeFramed(ctx, loc, w, off, n, &rb.frames)
		}
		data, err := r.fetchChunkInto(ctx, loc, &rb.chunk)
		if err != nil {
			return err
		}
		if int64(len(data)) < n {
			return fmt.Errorf("chunk %s holds %d of %d bytes: %w", id, len(data), n, ErrCorrupt)
		}
		return w.write(data[:n], off)
	})
}

// zeroPage is the unit a sparse restore leaves out: a page, and the block
// of every file system it is likely to write to.
const zeroPage = 4096

// zeros is compared against, never written.
var zeros [zeroPage]byte

// restoreWriter is a restore's target with how to write to it.
type restoreWriter struct {
	w io.WriterAt
	// whole: each chunk in one write (RestoreOptions.NetworkTarget).
	whole bool
	// zeroRun, when set, is the shortest run of zero pages that is left
	// out (RestoreOptions.Sparse).
	zeroRun int
}

// write writes p at off, leaving out the runs of whole zero pages of at
// least w.zeroRun bytes.
func (w restoreWriter) write(p []byte, off int64) error {
	if w.zeroRun == 0 {
		return w.writeAt(p, off)
	}
	from, zeroFrom := 0, -1 // p[from:] is unwritten; zeroFrom starts the current zero run
	for i := 0; i < len(p); i += zeroPage {
		j := min(i+zeroPage, len(p))
		if bytes.Equal(p[i:j], zeros[:j-i]) {
			if zeroFrom < 0 {
				zeroFrom = i
			}
			continue
		}
		if zeroFrom >= 0 && i-zeroFrom >= w.zeroRun {
			if err := w.writeAt(p[from:zeroFrom], off+int64(from)); err != nil {
				return err
			}
			from = i
		}
		zeroFrom = -1
	}
	end := len(p)
	if zeroFrom >= 0 && len(p)-zeroFrom >= w.zeroRun {
		end = zeroFrom
	}
	return w.writeAt(p[from:end], off+int64(from))
}

func (w restoreWriter) writeAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := w.w.WriteAt(p, off); err != nil {
		return targetError{fmt.Errorf("write at %d: %w", off, err)}
	}
	return nil
}

var _ io.ReaderAt = (*Reader)(nil)
