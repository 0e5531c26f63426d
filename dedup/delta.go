package dedup

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"

	"cairn/dedup/pack"
	"cairn/internal/bigbuf"
)

// A delta blob stores a block that differs from its parent checkpoint's
// version in a few 4 KiB pages: the changed pages themselves, and for every
// other page a reference to a chunk that stores that page physically (a
// whole or framed chunk, or a delta's own pages), never to a page that
// chunk itself takes from elsewhere. A read therefore follows at most one
// hop. The chunk ID stays the keyed hash of the whole block, so dedup,
// manifests and the index treat a delta like any other chunk
// (docs/format.md §9.3).
//
//	u32 sealed header length ‖ sealed header ‖ own pages as a framed blob
//
// header = version u8 ‖ frame shift u8 ‖ refs u16 ‖ own pages u32 ‖
// refs × (chunk ID 32 ‖ pack hint 16 ‖ flags u8) ‖ pages × source u8 ‖
// pages × page hash 16 ‖ xxh3 of what precedes u64, sealed with AD = chunk
// ID ‖ "delta". Source 0 is the delta's own next page, j+1 is refs[j]. The
// own pages' framed blob is sealed as chunk deltaPayloadID(ID), so its
// frames cannot be swapped with those of the chunk stored whole.
const (
	blobDelta    = 1 << 2
	pageSize     = 4096
	pageHashSize = 16
	deltaVersion = 1
	// maxDeltaRefs bounds the chunks a delta reads from: past it the block
	// is stored whole again, so reads of a block never fan out further.
	maxDeltaRefs = 16
	deltaRefSize = len(ChunkID{}) + len(PackID{}) + 1
	// refDelta flags a reference to a delta chunk's own pages.
	refDelta = 1
)

var deltaHeaderAD = []byte("delta")

// deltaRef is a chunk a delta takes pages from, with the pack it was in
// when the delta was written (a hint, like a manifest's).
type deltaRef struct {
	id    ChunkID
	pack  PackID
	delta bool // the referenced chunk is itself a delta: only its own pages are used
}

// deltaHeader is a decoded delta header.
type deltaHeader struct {
	shift    int
	refs     []deltaRef
	src      []uint8 // per page: 0 own, j+1 refs[j]
	ownIdx   []int32 // per page: its index among the own pages, or -1
	hashes   []byte  // per page, pageHashSize bytes
	ownBytes int64
	subOff   int64 // where the own pages' framed blob starts within the blob
}

// sub is where the own pages' framed blob of the delta at loc lies.
func (h *deltaHeader) sub(loc chunkLoc) chunkLoc {
	return chunkLoc{Pack: loc.Pack, Entry: packEntry{
		ID:        deltaPayloadID(loc.ID),
		Offset:    loc.Offset + uint64(h.subOff),
		StoredLen: loc.StoredLen - uint32(h.subOff),
		RawLen:    uint32(h.ownBytes),
		Flags:     framedFlags(h.shift),
	}}
}

// deltaPayloadID names a delta's own pages in the AD of their frames and in
// the frame cache. Only distinctness matters here: the block's content is
// authenticated by its chunk ID, checked by every whole read.
func deltaPayloadID(id ChunkID) ChunkID {
	return blake3.Sum256(append(id[:0:0], append(id[:], "delta pages"...)...))
}

func deltaAD(id ChunkID) []byte { return append(append(id[:0:0], id[:]...), deltaHeaderAD...) }

// pageLen is the length of page i of a chunk of rawLen bytes.
func pageLen(rawLen int64, i int) int64 { return min(pageSize, rawLen-int64(i)*pageSize) }

// appendPageHashes appends the keyed hash of every page of data.
func (h *hasher) appendPageHashes(dst, data []byte) []byte {
	for off := 0; off < len(data); off += pageSize {
		s := xxh3.Hash128Seed(data[off:min(len(data), off+pageSize)], h.pageSeed)
		dst = binary.LittleEndian.AppendUint64(dst, s.Lo)
		dst = binary.LittleEndian.AppendUint64(dst, s.Hi)
	}
	return dst
}

// decodeDeltaHeader parses the plaintext header of the delta chunk e, whose
// blob is storedLen bytes with the header's sealed form taking the first
// subOff of them.
func decodeDeltaHeader(e packEntry, plain []byte, subOff int64) (*deltaHeader, error) {
	bad := func(format string, a ...any) (*deltaHeader, error) {
		return nil, fmt.Errorf("chunk %s: delta header: %s: %w", e.ID, fmt.Sprintf(format, a...), ErrCorrupt)
	}
	if len(plain) < 16 {
		return bad("%d bytes", len(plain))
	}
	body := plain[:len(plain)-8]
	if xxh3.Hash(body) != binary.LittleEndian.Uint64(plain[len(body):]) {
		return bad("checksum mismatch")
	}
	if body[0] != deltaVersion {
		return nil, fmt.Errorf("chunk %s: delta version %d: %w", e.ID, body[0], ErrUnsupported)
	}
	h := &deltaHeader{shift: int(body[1]), subOff: subOff}
	if h.shift < frameShiftBase || h.shift > frameShiftBase+15 {
		return bad("frame shift %d", h.shift)
	}
	nrefs := int(binary.LittleEndian.Uint16(body[2:]))
	nown := int64(binary.LittleEndian.Uint32(body[4:]))
	pages := pageCount(e.RawLen)
	if nrefs == 0 || nrefs > maxDeltaRefs || pages == 0 {
		return bad("%d references for %d pages", nrefs, pages)
	}
	if len(body) != 8+nrefs*deltaRefSize+pages*(1+pageHashSize) {
		return bad("%d bytes for %d references and %d pages", len(body), nrefs, pages)
	}
	p := body[8:]
	for range nrefs {
		var ref deltaRef
		copy(ref.id[:], p)
		copy(ref.pack[:], p[32:48])
		if p[48]&^refDelta != 0 {
			return bad("reference flags %#x", p[48])
		}
		ref.delta = p[48]&refDelta != 0
		if ref.id == e.ID {
			return bad("refers to itself")
		}
		h.refs = append(h.refs, ref)
		p = p[deltaRefSize:]
	}
	h.src, h.hashes = p[:pages], p[pages:]
	h.ownIdx = make([]int32, pages)
	var own int32
	for i, s := range h.src {
		switch {
		case int(s) > nrefs:
			return bad("page %d refers to reference %d of %d", i, s, nrefs)
		case s == 0:
			h.ownIdx[i] = own
			own++
			h.ownBytes += pageLen(int64(e.RawLen), i)
		default:
			h.ownIdx[i] = -1
		}
	}
	if int64(own) != nown || own == 0 {
		return bad("%d own pages, the header says %d", own, nown)
	}
	return h, nil
}

// deltaHeaderOf reads and decodes the header of the delta chunk at loc, or
// takes it from the cache.
func (r *Repository) deltaHeaderOf(ctx context.Context, loc chunkLoc) (*deltaHeader, error) {
	if h, ok := r.deltaHeaders.Get(loc.ID); ok {
		return h, nil
	}
	name := pack.Name(loc.Pack)
	if loc.StoredLen < 4 {
		return nil, fmt.Errorf("chunk %s: delta blob of %d bytes: %w", loc.ID, loc.StoredLen, ErrCorrupt)
	}
	lb, err := r.obj.ReadAt(ctx, name, int64(loc.Offset), 4)
	if err != nil {
		return nil, fmt.Errorf("read chunk %s delta header from pack %s: %w", loc.ID, loc.Pack, err)
	}
	hl := int64(binary.LittleEndian.Uint32(lb))
	if hl+4 >= int64(loc.StoredLen) {
		return nil, fmt.Errorf("chunk %s: delta header of %d bytes in a %d-byte blob: %w", loc.ID, hl, loc.StoredLen, ErrCorrupt)
	}
	sealed, err := r.obj.ReadAt(ctx, name, int64(loc.Offset)+4, hl)
	if err != nil {
		return nil, fmt.Errorf("read chunk %s delta header from pack %s: %w", loc.ID, loc.Pack, err)
	}
	plain, err := r.seal.openInPlace(sealed, deltaAD(loc.ID))
	if err != nil {
		return nil, fmt.Errorf("chunk %s delta header in pack %s: %w", loc.ID, loc.Pack, err)
	}
	h, err := decodeDeltaHeader(loc.Entry, plain, 4+hl)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	r.deltaHeaders.Add(loc.ID, h, 1)
	return h, nil
}

// readDelta copies bytes [off, off+len(p)) of the delta chunk at loc into
// p: own pages from its framed payload, the others from the chunks they
// refer to.
func (r *Repository) readDelta(ctx context.Context, loc chunkLoc, off int64, p []byte) error {
	raw := int64(loc.RawLen)
	end := off + int64(len(p))
	if off < 0 || end > raw {
		return fmt.Errorf("read [%d, %d) of chunk %s of %d bytes: %w", off, end, loc.ID, raw, ErrCorrupt)
	}
	h, err := r.deltaHeaderOf(ctx, loc)
	if err != nil {
		return err
	}
	for pos := off; pos < end; {
		pg := int(pos / pageSize)
		s := h.src[pg]
		q := pg + 1
		for int64(q)*pageSize < end && h.src[q] == s {
			q++
		}
		stop := min(end, int64(q)*pageSize)
		dst := p[pos-off : stop-off]
		if s == 0 {
			err = r.readOwnPages(ctx, loc, h, pos, dst)
		} else {
			ref := h.refs[s-1]
			err = r.readRange(ctx, ref.id, ref.pack, pos, dst, true)
		}
		if err != nil {
			return err
		}
		pos = stop
	}
	return nil
}

// readOwnPages reads bytes [off, off+len(p)) of the delta at loc, all of
// them in pages the delta stores itself.
func (r *Repository) readOwnPages(ctx context.Context, loc chunkLoc, h *deltaHeader, off int64, p []byte) error {
	first, last := int(off/pageSize), int((off+int64(len(p))-1)/pageSize)
	for i := first; i <= last; i++ {
		if h.src[i] != 0 {
			return fmt.Errorf("page %d of delta chunk %s is not stored in it, yet another delta refers to it (a chain of deltas): %w", i, loc.ID, ErrCorrupt)
		}
	}
	fb := r.frameBufs.Get().(*frameBuffers)
	defer r.frameBufs.Put(fb)
	subOff := int64(h.ownIdx[first])*pageSize + off - int64(first)*pageSize
	return r.readFramed(ctx, h.sub(loc), subOff, p, fb)
}

// decodeDelta reads the whole delta chunk at loc into dst (grown when
// short) and checks that it hashes to the chunk ID.
func (r *Repository) decodeDelta(ctx context.Context, loc chunkLoc, dst []byte) ([]byte, error) {
	if cap(dst) < int(loc.RawLen) {
		dst = bigbuf.Make(int(loc.RawLen))
	}
	dst = dst[:loc.RawLen]
	if err := r.readDelta(ctx, loc, 0, dst); err != nil {
		return nil, err
	}
	if r.hash.id(dst) != loc.ID {
		return nil, fmt.Errorf("chunk %s does not hash to its ID: %w", loc.ID, ErrCorrupt)
	}
	return dst, nil
}

// pageSources is what a backup knows of the parent's version of a block:
// the hash of every page, and where every page is stored physically.
type pageSources struct {
	hashes []byte
	refs   []deltaRef
	src    []uint8 // per page: j+1 for refs[j]
}

// parentPages reads the page hashes of chunk id (the parent's version of a
// block) and where its pages lie. ok is false when the chunk has none
// (stored whole, or framed before page hashes).
func (r *Repository) parentPages(ctx context.Context, id ChunkID, hint PackID) (ps pageSources, ok bool, err error) {
	err = r.atChunk(ctx, id, hint, func(loc chunkLoc) error {
		self := deltaRef{id: id, pack: loc.Pack}
		pages := pageCount(loc.RawLen)
		switch {
		case loc.Flags&blobDelta != 0:
			h, err := r.deltaHeaderOf(ctx, loc)
			if err != nil {
				return err
			}
			self.delta = true
			ps.refs = append([]deltaRef{self}, h.refs...)
			ps.src = make([]uint8, pages)
			for i, s := range h.src {
				ps.src[i] = s + 1 // own pages: refs[0], the parent itself
			}
			ps.hashes, ok = h.hashes, true
		case loc.Flags&blobPageHashes != 0:
			hashes, err := r.readPageHashes(ctx, loc)
			if err != nil {
				return err
			}
			ps.refs = []deltaRef{self}
			ps.src = slices.Repeat([]uint8{1}, pages)
			ps.hashes, ok = hashes, true
		}
		return nil
	})
	return ps, ok, err
}

// deltaScratch are one backup worker's reusable buffers for deltas.
type deltaScratch struct {
	hashes, own, hdr, out, src, renum []byte // hashes: the block's page hashes
	blob                              blobScratch
}

// encodeDelta stores data (chunk id) as a delta over the parent's version
// ps when that pays: ok is false when the block must be stored whole
// (more than half of it would live in delta pages, or it would refer to
// more than maxDeltaRefs chunks). It returns the chunks the delta refers to.
func (r *Repository) encodeDelta(id ChunkID, data, hashes []byte, ps pageSources, sc *deltaScratch) (stored []byte, flags uint8, refs []deltaRef, ownBytes int64, ok bool) {
	pages := pageCount(uint32(len(data)))
	if pages*pageHashSize != len(ps.hashes) {
		return nil, 0, nil, 0, false // resized: another page count
	}
	sc.src = append(sc.src[:0], make([]uint8, pages)...)
	sc.renum = append(sc.renum[:0], make([]uint8, len(ps.refs)+1)...)
	src, renum := sc.src, sc.renum
	own := sc.own[:0]
	inDeltas := 0
	for i := range pages {
		a := i * pageHashSize
		if string(hashes[a:a+pageHashSize]) != string(ps.hashes[a:a+pageHashSize]) {
			own = append(own, data[i*pageSize:min(len(data), (i+1)*pageSize)]...)
			inDeltas++
			continue
		}
		old := ps.src[i]
		ref := ps.refs[old-1]
		if ref.delta {
			inDeltas++
		}
		if renum[old] == 0 {
			if len(refs) == maxDeltaRefs {
				return nil, 0, nil, 0, false
			}
			refs = append(refs, ref)
			renum[old] = uint8(len(refs))
		}
		src[i] = renum[old]
	}
	sc.own = own
	if len(own) == 0 || len(refs) == 0 || inDeltas*2 > pages {
		return nil, 0, nil, 0, false
	}
	shift := r.frameShift
	payload, _ := r.encodeFramed(deltaPayloadID(id), own, &sc.blob, shift, nil)
	h := sc.hdr[:0]
	h = append(h, deltaVersion, uint8(shift))
	h = binary.LittleEndian.AppendUint16(h, uint16(len(refs)))
	h = binary.LittleEndian.AppendUint32(h, uint32((len(own)+pageSize-1)/pageSize))
	for _, ref := range refs {
		h = append(h, ref.id[:]...)
		h = append(h, ref.pack[:]...)
		fl := uint8(0)
		if ref.delta {
			fl = refDelta
		}
		h = append(h, fl)
	}
	h = append(h, src...)
	h = append(h, hashes...)
	h = binary.LittleEndian.AppendUint64(h, xxh3.Hash(h))
	sc.hdr = h
	out := binary.LittleEndian.AppendUint32(sc.out[:0], 0)
	out = r.seal.seal(out, h, deltaAD(id))
	binary.LittleEndian.PutUint32(out, uint32(len(out)-4))
	out = append(out, payload...)
	sc.out = out
	return out, blobDelta | uint8(shift-frameShiftBase)<<4, refs, int64(len(own)), true
}
