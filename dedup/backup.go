package dedup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"cairn/dedup/pack"
	"cairn/internal/bigbuf"
	"cairn/internal/extent"
	"golang.org/x/sync/errgroup"
)

// Source is what a backup reads; blockdev's sources satisfy it. ReadAt must
// be safe for concurrent use.
type Source interface {
	io.ReaderAt
	Size() int64
	Name() string
}

// Extent is a byte range [Off, Off+Len) of a volume (package extent).
type Extent = extent.Extent

// BackupOptions steer one backup.
type BackupOptions struct {
	// Parent is the checkpoint this one follows (usually the previous
	// backup of the same source). Unchanged blocks are recognised against it
	// without an index lookup, and with Changed they are not read at all.
	Parent string
	// Allocated lists the extents that may hold data, sorted; blocks that
	// touch none of them are recorded as holes without being read. Nil
	// means the whole volume.
	Allocated []Extent
	// Changed, when non-nil and a Parent is given, lists the extents that
	// changed since the parent; all other blocks are taken from the parent.
	Changed []Extent
	Tags    map[string]string
	// Workers bounds the goroutines reading, hashing and compressing
	// (default GOMAXPROCS).
	Workers int
	// Progress, if set, is called from one goroutine about twice a second
	// and once at the end.
	Progress func(BackupProgress)
}

// BackupProgress reports a running backup.
type BackupProgress struct {
	TotalBytes int64 // bytes the backup will read
	DoneBytes  int64
	NewBytes   int64
	Elapsed    time.Duration
}

type blockResult struct {
	hole bool
	id   ChunkID
	pack PackID
}

// Backup reads src and commits a new checkpoint. Nothing becomes visible
// until the manifest is written, after every pack it references is durable;
// a failure or a kill at any point leaves earlier checkpoints untouched and
// at worst unreferenced packs, which prune removes.
func (r *Repository) Backup(ctx context.Context, src Source, o BackupOptions) (*Checkpoint, error) {
	if r.idx == nil {
		return nil, errors.New("backup needs the index: open the repository without NoIndex")
	}
	started := r.now()
	size := src.Size()
	bs := int64(r.cfg.BlockSize)
	nblocks := (size + bs - 1) / bs
	var parent *BlockMap
	var parentCP *Checkpoint
	if o.Parent != "" {
		var err error
		if parentCP, parent, err = r.LoadCheckpoint(ctx, o.Parent); err != nil {
			return nil, fmt.Errorf("load parent: %w", err)
		}
		if parentCP.BlockSize != r.cfg.BlockSize {
			parent = nil
		}
	}
	results := make([]blockResult, nblocks)
	if parent != nil && parentCP.Size != size {
		// A resized volume's change list does not describe its last block.
		o.Changed = nil
	}
	readSet := planReads(nblocks, bs, size, o.Allocated, o.Changed, parent)
	guard, err := r.guardBackup(ctx) // other processes: see locks.go
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", src.Name(), err)
	}
	defer guard.release()
	sess := r.startSession()
	defer r.endSession(sess)

	var total int64
	for b := int64(0); b < nblocks; b++ {
		switch readSet[b] {
		case planRead:
			total += min(bs, size-b*bs)
		case planHole:
			results[b].hole = true
		case planParent:
			ref, ok := parent.Lookup(b)
			if !ok {
				results[b].hole = true
			} else {
				results[b] = blockResult{id: ref.ID, pack: parent.Packs[ref.Pack]}
				sess.pin(ref.ID)
			}
		}
	}

	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Three uploaders keep the CPUs busy while two wait in fsync.
	pk := newPacker(ctx, r, sess, 3)
	var done, newBytes, newChunks atomic.Int64
	stopProgress := startProgress(o.Progress, total, &done, &newBytes, started, r.now)

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int64, workers*2)
	g.Go(func() error {
		defer close(jobs)
		for b := int64(0); b < nblocks; b++ {
			if readSet[b] != planRead {
				continue
			}
			select {
			case jobs <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	zero := bigbuf.Make(int(bs))
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			buf := bigbuf.Make(int(bs))
			var scratch blobScratch
			var ds deltaScratch
			for b := range jobs {
				n := min(bs, size-b*bs)
				data := buf[:n]
				if _, err := src.ReadAt(data, b*bs); err != nil && !(errors.Is(err, io.EOF) && b*bs+n == size) {
					return fmt.Errorf("read %s at %d: %w", src.Name(), b*bs, err)
				}
				done.Add(n)
				if bytes.Equal(data, zero[:n]) {
					results[b].hole = true
					continue
				}
				id := r.hash.id(data)
				if parent != nil {
					if ref, ok := parent.Lookup(b); ok && ref.ID == id {
						results[b] = blockResult{id: id, pack: parent.Packs[ref.Pack]}
						sess.pin(id)
						continue
					}
				}
				pack, exists, claimed, err := r.dedupLookup(sess, id)
				if err != nil {
					return err
				}
				results[b].id = id
				if exists || !claimed {
					results[b].pack = pack // zero when another worker is storing it
					continue
				}
				stored, flags, added := r.encodeBlock(gctx, sess, id, data, parent, b, &scratch, &ds)
				if results[b].pack, err = pk.add(id, stored, int(n), flags); err != nil {
					return err
				}
				newBytes.Add(added)
				newChunks.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		pk.abort()
		stopProgress()
		return nil, fmt.Errorf("backup %s: %w", src.Name(), err)
	}
	storedBytes, err := pk.finish()
	stopProgress()
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", src.Name(), err)
	}

	cp := &Checkpoint{
		ID: newCheckpointID(started), Source: src.Name(), CreatedAt: started.UTC(),
		Size: size, BlockSize: r.cfg.BlockSize, Full: !usedChanges(readSet), Tags: o.Tags,
	}
	if parentCP != nil {
		cp.Parent = parentCP.ID
	}
	if h, err := os.Hostname(); err == nil {
		cp.Hostname = h
	}
	bm := buildBlockMap(results, sess)
	cp.Blocks = nblocks
	for _, h := range bm.Holes {
		cp.HoleBlocks += h.Count
	}
	cp.AllocatedBytes = size - holeBytes(bm.Holes, bs, size)
	cp.ReadBytes = done.Load()
	cp.NewBytes = newBytes.Load()
	cp.NewChunks = newChunks.Load()
	cp.StoredBytes = storedBytes
	cp.FinishedAt = r.now().UTC()
	if err := guard.beforeCommit(ctx, sess, bm); err != nil {
		return nil, fmt.Errorf("backup %s: %w", src.Name(), err)
	}
	if err := r.checkDeltaRefs(ctx, sess, guard.verify); err != nil {
		return nil, fmt.Errorf("backup %s: %w", src.Name(), err)
	}
	if err := r.commit(ctx, cp, bm); err != nil {
		return nil, err
	}
	return cp, nil
}

// encodeBlock encodes new chunk id, block b: as a delta over the parent's
// version of the block when few of its pages changed, else whole. It
// returns the plaintext bytes it added (a delta's own pages).
func (r *Repository) encodeBlock(ctx context.Context, sess *session, id ChunkID, data []byte, parent *BlockMap, b int64, sc *blobScratch, ds *deltaScratch) ([]byte, uint8, int64) {
	// Hashed once: the delta compares them, and a whole framed blob
	// stores them for the next backup.
	var hashes []byte
	if r.frameShift > 0 && len(data) > pageSize {
		ds.hashes = r.hash.appendPageHashes(ds.hashes[:0], data)
		hashes = ds.hashes
	}
	if parent != nil && hashes != nil {
		if ref, ok := parent.Lookup(b); ok {
			ps, ok, err := r.parentPages(ctx, ref.ID, parent.Packs[ref.Pack])
			if err != nil && ctx.Err() == nil {
				// The block is stored whole: slower to store, as safe.
				r.log("block %d: parent chunk %s unreadable, stored whole: %v", b, ref.ID, err)
			}
			if ok {
				if stored, flags, refs, own, ok := r.encodeDelta(id, data, hashes, ps, ds); ok {
					sess.pinRefs(refs)
					return stored, flags, own
				}
			}
		}
	}
	stored, flags := r.encodeBlob(id, data, sc, hashes)
	return stored, flags, int64(len(data))
}

// checkDeltaRefs makes sure, just before the commit, that every chunk the
// backup's deltas take pages from is still indexed (a prune in this process
// may have removed it before the session pinned it) and, when a prune of
// another process may have run (packs), that its pack still exists.
func (r *Repository) checkDeltaRefs(ctx context.Context, sess *session, packs bool) error {
	sess.mu.Lock()
	refs := maps.Clone(sess.deltaRefs)
	sess.mu.Unlock()
	for id := range refs {
		r.gate.RLock()
		loc, ok, err := r.idx.Lookup(id)
		r.gate.RUnlock()
		if err != nil {
			return fmt.Errorf("index lookup: %w", err)
		}
		if ok && packs && r.shardCount(ctx, pack.Name(loc.Pack)) < r.cfg.DataShards {
			ok = false
		}
		if !ok {
			return fmt.Errorf("checkpoint not committed: chunk %s, which a delta of this backup takes pages from, was removed by a prune; run the backup again: %w", id, ErrChunkNotFound)
		}
	}
	return nil
}

const (
	planHole = iota
	planRead
	planParent
)

// planReads decides, per block, whether it is a hole, must be read, or can
// be taken from the parent without reading.
func planReads(nblocks, bs, size int64, allocated, changed []Extent, parent *BlockMap) []uint8 {
	plan := make([]uint8, nblocks)
	mark := func(ext []Extent, v uint8) {
		for _, e := range ext {
			if e.Len <= 0 {
				continue
			}
			first, last := e.Off/bs, min((e.Off+e.Len-1)/bs, nblocks-1)
			for b := first; b <= last; b++ {
				plan[b] = v
			}
		}
	}
	if allocated == nil {
		allocated = []Extent{{Off: 0, Len: size}}
	}
	mark(allocated, planRead)
	if changed != nil && parent != nil && parent.Blocks == nblocks {
		for b := range plan {
			if plan[b] == planRead {
				plan[b] = planParent
			}
		}
		// A changed block is read even when outside the allocated extents:
		// it may have become a hole, and reading zeros records that.
		mark(changed, planRead)
	}
	return plan
}

func buildBlockMap(results []blockResult, s *session) *BlockMap {
	bm := &BlockMap{Blocks: int64(len(results))}
	packIdx := make(map[PackID]uint32)
	for b, res := range results {
		if res.hole {
			if n := len(bm.Holes); n > 0 && bm.Holes[n-1].Start+bm.Holes[n-1].Count == int64(b) {
				bm.Holes[n-1].Count++
			} else {
				bm.Holes = append(bm.Holes, HoleRun{Start: int64(b), Count: 1})
			}
			continue
		}
		p := res.pack
		if p == (PackID{}) {
			p = s.pending[res.id]
		}
		i, ok := packIdx[p]
		if !ok {
			i = uint32(len(bm.Packs))
			packIdx[p] = i
			bm.Packs = append(bm.Packs, p)
		}
		bm.Chunks = append(bm.Chunks, ChunkRef{ID: res.id, Pack: i})
	}
	bm.prepare()
	return bm
}

func holeBytes(holes []HoleRun, bs, size int64) int64 {
	var n int64
	for _, h := range holes {
		end := min((h.Start+h.Count)*bs, size)
		n += end - h.Start*bs
	}
	return n
}

func startProgress(fn func(BackupProgress), total int64, done, newBytes *atomic.Int64, start time.Time, now func() time.Time) (stop func()) {
	if fn == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	report := func() {
		fn(BackupProgress{TotalBytes: total, DoneBytes: done.Load(), NewBytes: newBytes.Load(), Elapsed: now().Sub(start)})
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-quit:
				report()
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// usedChanges reports whether any block was taken from the parent unread.
func usedChanges(plan []uint8) bool {
	for _, p := range plan {
		if p == planParent {
			return true
		}
	}
	return false
}
