package dedup

import (
	"context"
	"fmt"
	"sync"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"cairn/dedup/index"
	"cairn/dedup/pack"
	"cairn/internal/bigbuf"
)

// packer appends blobs to the open pack and hands sealed packs to a bounded
// set of uploaders, which erasure-code them, write the shards and then record
// the pack in the index. A chunk is findable through the index only once its
// pack is durable in every shard store.
type packer struct {
	r    *Repository
	s    *session
	mu   sync.Mutex
	id   PackID
	buf  []byte
	ents []packEntry

	uploads chan sealedPack
	g       *errgroup.Group
	ctx     context.Context

	// packs and shards recycle the pack buffers and shard objects of
	// this backup.
	packs, shards *bigbuf.Pool

	statsMu     sync.Mutex
	storedBytes int64
}

type sealedPack struct {
	id      PackID
	data    []byte
	entries []packEntry
}

func newPacker(ctx context.Context, r *Repository, s *session, uploaders int) *packer {
	g, gctx := errgroup.WithContext(ctx)
	// Buffers for the packs being uploaded and the one being filled; for
	// each upload, k+m shard objects.
	p := &packer{r: r, s: s, uploads: make(chan sealedPack), g: g, ctx: gctx,
		packs: bigbuf.NewPool(uploaders + 1), shards: bigbuf.NewPool(uploaders * (r.cfg.DataShards + r.cfg.ParityShards))}
	for i := 0; i < uploaders; i++ {
		g.Go(p.uploader)
	}
	return p
}

// add appends one blob and returns the pack it went to. It blocks while all
// uploaders are busy, which bounds memory to a few packs.
func (p *packer) add(id ChunkID, stored []byte, rawLen int, flags uint8) (PackID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf == nil {
		p.id = pack.NewID()
		p.buf = p.packs.Get(packBufferLen(p.r.cfg.PackSize, p.r.cfg.BlockSize))[:0]
		p.s.mu.Lock()
		p.s.newPacks[p.id] = struct{}{}
		p.s.mu.Unlock()
	}
	p.ents = append(p.ents, packEntry{
		ID: id, Offset: uint64(len(p.buf)), StoredLen: uint32(len(stored)),
		RawLen: uint32(rawLen), Flags: flags, Sum: xxh3.Hash(stored),
	})
	p.buf = append(p.buf, stored...)
	dst := p.id
	p.s.mu.Lock()
	p.s.pending[id] = dst
	p.s.mu.Unlock()
	if len(p.buf) >= p.r.cfg.PackSize {
		if err := p.sealLocked(); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// packBufferLen is the room a pack buffer starts with: a pack is sealed
// once it reaches packSize, so it holds less than that plus one blob (a
// block with its frame table and seal, a little larger than the block when
// it does not compress) plus the sealed header of its entries. A pack that
// outgrows it still works (append copies it); a buffer sized for the
// largest block any repository may have (16 MiB) was five times a default
// pack, in memory and page faults.
func packBufferLen(packSize, blockSize int) int {
	return packSize + blockSize + blockSize/8 + 64<<10
}

func (p *packer) sealLocked() error {
	if len(p.ents) == 0 {
		return nil
	}
	hdr := p.r.seal.seal(nil, pack.EncodeHeader(p.ents), packHeaderAD(p.id))
	data := append(p.buf, hdr...)
	data = append(data, pack.EncodeTrailer(len(hdr))...)
	sp := sealedPack{id: p.id, data: data, entries: p.ents}
	p.buf, p.ents = nil, nil
	select {
	case p.uploads <- sp:
		return nil
	case <-p.ctx.Done():
		return fmt.Errorf("upload pack: %w", context.Cause(p.ctx))
	}
}

func (p *packer) uploader() error {
	for sp := range p.uploads {
		n, err := p.r.obj.PutPooled(p.ctx, pack.Name(sp.id), sp.data, p.shards)
		if err != nil {
			return fmt.Errorf("write pack %s: %w", sp.id, err)
		}
		p.packs.Put(sp.data)
		p.r.headers.Add(sp.id, sp.entries, 1)
		if p.r.idx != nil {
			pi := index.PackInfo{Created: p.r.now(), Length: int64(len(sp.data)), ShardBytes: n, Chunks: uint32(len(sp.entries))}
			if err := p.r.idx.AddPack(sp.id, pi, sp.entries); err != nil {
				return fmt.Errorf("index pack %s: %w", sp.id, err)
			}
		}
		p.statsMu.Lock()
		p.storedBytes += n
		p.statsMu.Unlock()
	}
	return nil
}

// finish seals the last pack and waits for every upload.
func (p *packer) finish() (storedBytes int64, err error) {
	p.mu.Lock()
	err = p.sealLocked()
	p.mu.Unlock()
	close(p.uploads)
	if werr := p.g.Wait(); err == nil {
		err = werr
	}
	return p.storedBytes, err
}

// abort stops the uploaders after a failure.
func (p *packer) abort() {
	p.mu.Lock()
	p.buf, p.ents = nil, nil
	p.mu.Unlock()
	close(p.uploads)
	_ = p.g.Wait()
}
