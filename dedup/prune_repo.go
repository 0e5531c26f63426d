package dedup

import (
	"context"
	"fmt"
	"time"

	"github.com/zeebo/xxh3"

	"cairn/dedup/index"
	"cairn/dedup/pack"
	"cairn/dedup/prune"
)

// pruneRepo is the repository as package prune sees it (prune.Repo). Prune
// decides what goes; what must stay because a backup of this process needs
// it (sessions, their pins) is checked here, under the gate, where a dedup
// lookup cannot slip between the check and the unlink: prune never learns
// of sessions. It is unexported so that Repository's exported surface does
// not grow with prune's needs.
type pruneRepo struct {
	r   *Repository
	now time.Time // read once by Prune: the guard's end marker shares it
}

var _ prune.Repo = pruneRepo{}

func (a pruneRepo) Now() time.Time { return a.now }

func (a pruneRepo) Logf(format string, args ...any) { a.r.log(format, args...) }

// MarkLive reads one manifest at a time, so memory stays bounded by the
// largest.
func (a pruneRepo) MarkLive(ctx context.Context, mark func(ChunkID) error) error {
	r := a.r
	ids, err := r.manifestIDs(ctx)
	if err != nil {
		return fmt.Errorf("list checkpoints: %w", err)
	}
	for _, id := range ids {
		b, err := r.obj.Get(ctx, manifestName(id))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.shardCount(ctx, manifestName(id)) < r.cfg.DataShards {
				continue // deleted since the listing: nothing to keep for it
			}
			// Its chunks would look unreferenced: never guess.
			return fmt.Errorf("read manifest %s (run `cairn repo verify`): %w", id, err)
		}
		_, bm, err := r.decodeManifest(id, b, true)
		if err != nil {
			return fmt.Errorf("refusing to prune past an unreadable checkpoint: %w", err)
		}
		for _, c := range bm.Chunks {
			if err := mark(c.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a pruneRepo) Packs(ctx context.Context) ([]prune.Pack, error) {
	var packs []prune.Pack
	err := a.r.listPackShards(ctx, func(p PackID, shards int) error {
		packs = append(packs, prune.Pack{ID: p, Shards: shards, Complete: shards >= a.r.cfg.DataShards})
		return nil
	})
	return packs, err
}

func (a pruneRepo) Header(ctx context.Context, p PackID) ([]packEntry, error) {
	return a.r.packHeader(ctx, p)
}

func (a pruneRepo) IsDelta(e packEntry) bool { return e.Flags&blobDelta != 0 }

func (a pruneRepo) Lookup(id ChunkID) (prune.Indexed, bool, error) {
	loc, ok, err := a.r.idx.Lookup(id)
	if err != nil || !ok {
		return prune.Indexed{}, false, err
	}
	return prune.Indexed{Loc: loc, Pages: int64(pageCount(loc.RawLen))}, true, nil
}

func (a pruneRepo) ReadDelta(ctx context.Context, loc chunkLoc) ([]ChunkID, int64, error) {
	h, err := a.r.deltaHeaderOf(ctx, loc)
	if err != nil {
		return nil, 0, err
	}
	refs := make([]ChunkID, len(h.refs))
	for i, ref := range h.refs {
		refs[i] = ref.id
	}
	var borrowed int64
	for _, s := range h.src {
		if s != 0 { // 0 is the delta's own page
			borrowed++
		}
	}
	return refs, borrowed, nil
}

// RewriteWhole writes through a session of its own, so that the sweep sees
// the new packs as in use until they are indexed.
func (a pruneRepo) RewriteWhole(ctx context.Context, users []chunkLoc) (written int64, err error) {
	r := a.r
	own := r.startSession()
	defer r.endSession(own)
	pk := newPacker(ctx, r, own, 2)
	var plain []byte
	var sc blobScratch
	for _, loc := range users {
		if plain, err = r.decodeDelta(ctx, loc, plain); err != nil {
			pk.abort()
			return 0, err
		}
		stored, flags := r.encodeBlob(loc.ID, plain, &sc, nil)
		if _, err := pk.add(loc.ID, stored, len(plain), flags); err != nil {
			pk.abort()
			return 0, err
		}
	}
	if written, err = pk.finish(); err != nil {
		return 0, err
	}
	own.forget()
	return written, nil
}

func (a pruneRepo) WriteMarker(ctx context.Context, started time.Time) error {
	return a.r.writePruneMarker(ctx, started, time.Time{})
}

func (a pruneRepo) RemoveIncompleteManifests(ctx context.Context, fence time.Time, dry bool) (int, error) {
	return a.r.removeIncompleteManifests(ctx, fence, dry)
}

func (a pruneRepo) PackFacts(p PackID) (prune.PackFacts, error) {
	// Checked before the index: once no session of this process writes p,
	// its uploader has indexed it if it ever will.
	if a.r.packInFlight(p) {
		return prune.PackFacts{Writing: true}, nil
	}
	pi, ok, err := a.r.idx.Pack(p)
	if err != nil || !ok {
		return prune.PackFacts{}, err
	}
	return prune.PackFacts{Indexed: true, Created: pi.Created, Chunks: int(pi.Chunks)}, nil
}

func (a pruneRepo) RecordPack(p PackID, created time.Time, chunks int) error {
	return a.r.idx.AddPack(p, index.PackInfo{Created: created, Chunks: uint32(chunks)}, nil)
}

func (a pruneRepo) PackBytes(ctx context.Context, p PackID) int64 {
	return a.r.shardBytes(ctx, pack.Name(p))
}

// CopyLive copies blobs as stored: entries carry flags and sums, and a blob
// is sealed with its chunk ID, not its pack, so nothing is re-encoded. It
// writes through a session of its own, like RewriteWhole, and ends it with
// the batch: by then the copies are durable and indexed, and the session
// holds nothing DeletePack could trip on.
func (a pruneRepo) CopyLive(ctx context.Context, batch []prune.Compaction) ([]prune.Copied, int64, error) {
	r := a.r
	own := r.startSession()
	defer r.endSession(own)
	pk := newPacker(ctx, r, own, 2)
	out := make([]prune.Copied, len(batch))
	seen := make(map[ChunkID]struct{})
	for i, c := range batch {
		live, blobs, err := a.readLive(ctx, c, own)
		if err != nil {
			if ctx.Err() != nil {
				pk.abort()
				return nil, 0, ctx.Err()
			}
			out[i].Err = err
			continue
		}
		copied := make(map[ChunkID]struct{}, len(live))
		for j, e := range live {
			copied[e.ID] = struct{}{}
			if _, dup := seen[e.ID]; dup {
				continue
			}
			seen[e.ID] = struct{}{}
			if _, err := pk.add(e.ID, blobs[j], int(e.RawLen), e.Flags); err != nil {
				pk.abort()
				return nil, 0, fmt.Errorf("compact pack %s: %w", c.Pack, err)
			}
		}
		out[i].Chunks = copied
	}
	written, err := pk.finish()
	if err != nil {
		return nil, 0, fmt.Errorf("write compacted packs: %w", err)
	}
	own.forget()
	return out, written, nil
}

// readLive reads the stored bytes of every entry of c that prune keeps or
// that a backup of this process holds: a backup may pin a dead chunk
// between the sweep's visit and now, and copying it too lets the pack go
// anyway.
func (a pruneRepo) readLive(ctx context.Context, c prune.Compaction, own *session) ([]packEntry, [][]byte, error) {
	r := a.r
	held := r.heldChunks(c.Entries, own)
	var live []packEntry
	var blobs [][]byte
	for i, e := range c.Entries {
		if _, ok := held[e.ID]; !c.Live[i] && !ok {
			continue
		}
		b, err := r.obj.ReadAt(ctx, pack.Name(c.Pack), int64(e.Offset), int64(e.StoredLen))
		if err != nil {
			return nil, nil, fmt.Errorf("read chunk %s: %w", e.ID, err)
		}
		if xxh3.Hash(b) != e.Sum {
			return nil, nil, fmt.Errorf("chunk %s: checksum mismatch: %w", e.ID, ErrCorrupt)
		}
		live = append(live, e)
		blobs = append(blobs, b)
	}
	return live, blobs, nil
}

// DeletePack deletes only after the index has forgotten the pack: a prune
// killed in between leaves an unindexed orphan, which the next prune
// removes, and never a dangling entry.
func (a pruneRepo) DeletePack(ctx context.Context, p PackID, entries []packEntry, copied map[ChunkID]struct{}) (bool, int64, error) {
	r := a.r
	ok, err := r.unlinkPack(p, entries, copied)
	if err != nil || !ok {
		return false, 0, err
	}
	n := r.shardBytes(ctx, pack.Name(p))
	if err := r.obj.Delete(ctx, pack.Name(p)); err != nil {
		return true, 0, fmt.Errorf("delete pack %s: %w", p, err)
	}
	r.headers.Remove(p) // a reader may have cached it again meanwhile
	return true, n, nil
}

// forget drops what the session wrote once it is durable and indexed: it
// need not hold it any more, a hold would keep the sweep from removing
// what the copies replace, and forgetting keeps the maps from growing.
func (s *session) forget() {
	s.mu.Lock()
	clear(s.pending)
	clear(s.newPacks)
	s.mu.Unlock()
}

// unlinkPack makes pack p unfindable unless a backup of this process needs
// it. Under the gate's write lock no dedup lookup is in flight: a chunk in p
// was either pinned before (and is seen here) or cannot be found after.
// copied lists chunks already stored again elsewhere, which need no pin.
// Prune's own writing sessions have ended and forgotten what they wrote by
// the time it unlinks anything, so they hold nothing here.
func (r *Repository) unlinkPack(p PackID, entries []packEntry, copied map[ChunkID]struct{}) (bool, error) {
	r.gate.Lock()
	defer r.gate.Unlock()
	for s := range r.sessions {
		if s.holds(p, entries, copied) {
			return false, nil
		}
	}
	for _, s := range r.ended {
		if s.holds(p, entries, copied) {
			return false, nil
		}
	}
	if err := r.idx.RemovePack(p, entries); err != nil {
		return false, fmt.Errorf("unindex pack %s: %w", p, err)
	}
	r.headers.Remove(p)
	for _, e := range entries {
		if _, ok := copied[e.ID]; !ok {
			r.chunks.remove(e.ID)
		}
	}
	return true, nil
}

// holds reports whether the session wrote pack p or references a chunk of
// it other than those in skip.
func (s *session) holds(p PackID, entries []packEntry, skip map[ChunkID]struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.newPacks[p]; ok {
		return true
	}
	for _, e := range entries {
		if _, ok := skip[e.ID]; ok {
			continue
		}
		_, pinned := s.pins[e.ID]
		_, pending := s.pending[e.ID]
		if pinned || pending {
			return true
		}
	}
	return false
}

// packInFlight reports whether a backup of this process is writing pack p.
func (r *Repository) packInFlight(p PackID) bool {
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		if s.holds(p, nil, nil) {
			return true
		}
	}
	return false
}

// heldChunks returns the chunks of entries that some backup of this process
// references right now.
func (r *Repository) heldChunks(entries []packEntry, own *session) map[ChunkID]struct{} {
	held := make(map[ChunkID]struct{})
	visit := func(s *session) {
		if s == own {
			return
		}
		s.mu.Lock()
		for _, e := range entries {
			_, pinned := s.pins[e.ID]
			_, pending := s.pending[e.ID]
			if pinned || pending {
				held[e.ID] = struct{}{}
			}
		}
		s.mu.Unlock()
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	for s := range r.sessions {
		visit(s)
	}
	for _, s := range r.ended {
		visit(s)
	}
	return held
}
