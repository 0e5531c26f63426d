package dedup

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"

	"github.com/zeebo/xxh3"

	"cairn/dedup/erasure"
	"cairn/dedup/pack"
	"cairn/dedup/store"
	"cairn/internal/bigbuf"
)

// A framed blob stores a chunk as independent frames, each compressed and
// sealed on its own, behind a table of their stored lengths and checksums
// (docs/format.md §9.2). A read of a few KiB of a 4 MiB chunk (an NBD
// export, a FUSE read) then fetches and decodes one frame, not the chunk.
//
//	table ‖ [page hashes] ‖ frame 0 ‖ … ‖ frame n−1
//
// table = seal(n × (stored_len u32 | compressed bit 31, xxh3 u64) ‖ xxh3 of
// the entries u64, AD = chunk ID ‖ "frames"); page hashes, with flag
// blobPageHashes = seal(one keyed 128-bit hash per 4 KiB page ‖ xxh3 of
// them u64, AD = chunk ID ‖ "pages"), apart from the table so that a random
// read does not fetch them; frame i = seal(payload_i,
// AD = chunk ID ‖ i as u32). Every frame but the last holds frameSize bytes
// of plaintext, so n and the table's length follow from raw_len and the
// flags alone, and a reader fetches the table with no lookup first.
const (
	blobFramed = 1 << 1
	// blobPageHashes: the frame table also holds a keyed 128-bit hash of
	// every 4 KiB page of the chunk, so that a later version of the block
	// can be compared page by page without reading this one (delta.go).
	blobPageHashes = 1 << 3
	// The frame size is 1 << (frameShiftBase + flags>>4): 4 KiB to 128 MiB,
	// so a later choice needs no new format.
	frameShiftBase = 12
	frameEntrySize = 12
	frameFlagsMask = 0xf0
	// defaultFrameShift chooses 128 KiB frames: see docs/format.md §9.2
	// for the measurements (compression lost against random-read cost).
	defaultFrameShift = 17
	frameCompressed   = 1 << 31
)

var (
	framesTableAD = []byte("frames")
	pageHashesAD  = []byte("pages")
)

// frameShiftOf checks Options.FrameSize and returns its log2 (0: write
// chunks whole).
func frameShiftOf(size int) (int, error) {
	switch {
	case size == 0:
		return defaultFrameShift, nil
	case size < 0:
		return 0, nil
	}
	shift := bits.TrailingZeros(uint(size))
	if size != 1<<shift || shift < frameShiftBase || shift > frameShiftBase+15 {
		return 0, fmt.Errorf("frame size %d: want a power of two from 4 KiB to 128 MiB", size)
	}
	return shift, nil
}

func framedFlags(shift int) uint8 { return blobFramed | uint8(shift-frameShiftBase)<<4 }

// pageCount is how many 4 KiB pages hold rawLen bytes.
func pageCount(rawLen uint32) int { return int((int64(rawLen) + pageSize - 1) / pageSize) }

// frameSizeOf is the plaintext size of a framed blob's frames.
func frameSizeOf(flags uint8) int64 { return 1 << (frameShiftBase + int(flags>>4)) }

// frameCount is how many frames hold rawLen bytes.
func frameCount(rawLen uint32, flags uint8) int {
	fs := frameSizeOf(flags)
	return int((int64(rawLen) + fs - 1) / fs)
}

// frameTableLen is the stored length of a framed blob's table.
func (r *Repository) frameTableLen(e packEntry) int64 {
	return int64(frameCount(e.RawLen, e.Flags)*frameEntrySize+8) + int64(r.seal.overhead())
}

// pageHashesLen is the stored length of a framed blob's page hashes, which
// follow its table (0 without them).
func (r *Repository) pageHashesLen(e packEntry) int64 {
	if e.Flags&blobPageHashes == 0 {
		return 0
	}
	return int64(pageCount(e.RawLen)*pageHashSize+8) + int64(r.seal.overhead())
}

func pagesAD(id ChunkID) []byte { return append(append(id[:0:0], id[:]...), pageHashesAD...) }

func frameAD(id ChunkID, i int) []byte {
	return binary.LittleEndian.AppendUint32(append(id[:0:0], id[:]...), uint32(i))
}

func tableAD(id ChunkID) []byte { return append(append(id[:0:0], id[:]...), framesTableAD...) }

// frame is one table entry, with its place in the blob worked out.
type frame struct {
	off, n     int64 // stored bytes within the blob
	raw        int64 // plaintext length
	sum        uint64
	compressed bool
}

// encodeFramed compresses and seals raw frame by frame, followed by its
// page hashes (raw's, appendPageHashes) unless hashes is nil; like
// encodeBlob, the result lives in sc until its next use.
func (r *Repository) encodeFramed(id ChunkID, raw []byte, sc *blobScratch, shift int, hashes []byte) ([]byte, uint8) {
	flags := framedFlags(shift)
	if hashes != nil {
		flags |= blobPageHashes
	}
	fs := int(frameSizeOf(flags))
	n := frameCount(uint32(len(raw)), flags)
	e := packEntry{ID: id, RawLen: uint32(len(raw)), Flags: flags}
	tl := int(r.frameTableLen(e))
	hl := int(r.pageHashesLen(e))
	if need := len(raw) + n*r.seal.overhead() + tl + hl; cap(sc.s) < need {
		sc.s = bigbuf.Make(need)
	}
	out := sc.s[:tl+hl]
	table := sc.t[:0]
	for i := range n {
		p := raw[i*fs : min(len(raw), (i+1)*fs)]
		word := uint32(0)
		if r.cfg.Compression == "zstd" {
			sc.z = r.codec.Compress(sc.z, p)
			if len(sc.z) < len(p)-len(p)/64 {
				p, word = sc.z, frameCompressed
			}
		}
		start := len(out)
		out = r.seal.seal(out, p, frameAD(id, i))
		word |= uint32(len(out) - start)
		table = binary.LittleEndian.AppendUint32(table, word)
		table = binary.LittleEndian.AppendUint64(table, xxh3.Hash(out[start:]))
	}
	table = binary.LittleEndian.AppendUint64(table, xxh3.Hash(table))
	sc.t = table
	// The table goes in front, into the room kept for it: seal appends to
	// out[:0] within its capacity, so nothing after it moves.
	if got := r.seal.seal(out[:0], table, tableAD(id)); len(got) != tl {
		panic(fmt.Sprintf("frame table sealed to %d bytes, want %d", len(got), tl))
	}
	if hashes != nil {
		ph := append(sc.t[:0], hashes...)
		ph = binary.LittleEndian.AppendUint64(ph, xxh3.Hash(ph))
		sc.t = ph
		if got := r.seal.seal(out[tl:tl], ph, pagesAD(id)); len(got) != hl {
			panic(fmt.Sprintf("page hashes sealed to %d bytes, want %d", len(got), hl))
		}
	}
	sc.s = out
	return out, flags
}

// openSummed opens (in place) a sealed item that ends in the xxh3 of the
// rest, checks that sum, and returns the rest. In an unencrypted repository
// the sum is what catches damage.
func (r *Repository) openSummed(sealed, ad []byte) ([]byte, error) {
	plain, err := r.seal.openInPlace(sealed, ad)
	if err != nil {
		return nil, err
	}
	if len(plain) < 8 {
		return nil, fmt.Errorf("%d bytes: %w", len(plain), ErrCorrupt)
	}
	body := plain[:len(plain)-8]
	if xxh3.Hash(body) != binary.LittleEndian.Uint64(plain[len(body):]) {
		return nil, fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	return body, nil
}

// decodeFrameTable opens a framed blob's table (in place: sealed is spent)
// and checks it against e: every frame inside the blob, the lengths adding
// up to the blob's.
func (r *Repository) decodeFrameTable(e packEntry, sealed []byte, dst []frame) ([]frame, error) {
	if f := e.Flags &^ frameFlagsMask; f != blobFramed && f != blobFramed|blobPageHashes {
		return nil, fmt.Errorf("chunk %s: flags %#x: %w", e.ID, e.Flags, ErrCorrupt)
	}
	tl := r.frameTableLen(e)
	if int64(len(sealed)) != tl || tl+r.pageHashesLen(e) > int64(e.StoredLen) {
		return nil, fmt.Errorf("chunk %s: frame table of %d bytes in a %d-byte blob: %w", e.ID, len(sealed), e.StoredLen, ErrCorrupt)
	}
	body, err := r.openSummed(sealed, tableAD(e.ID))
	if err != nil {
		return nil, fmt.Errorf("chunk %s frame table: %w", e.ID, err)
	}
	n := len(body) / frameEntrySize
	fs := frameSizeOf(e.Flags)
	frames := dst[:0]
	off := tl + r.pageHashesLen(e)
	for i := range n {
		word := binary.LittleEndian.Uint32(body[i*frameEntrySize:])
		f := frame{off: off, n: int64(word &^ frameCompressed), raw: min(fs, int64(e.RawLen)-int64(i)*fs),
			sum: binary.LittleEndian.Uint64(body[i*frameEntrySize+4:]), compressed: word&frameCompressed != 0}
		off += f.n
		if off > int64(e.StoredLen) {
			return nil, fmt.Errorf("chunk %s: frame %d ends past the blob's %d bytes: %w", e.ID, i, e.StoredLen, ErrCorrupt)
		}
		frames = append(frames, f)
	}
	if off != int64(e.StoredLen) {
		return nil, fmt.Errorf("chunk %s: frames end at %d of %d bytes: %w", e.ID, off, e.StoredLen, ErrCorrupt)
	}
	return frames, nil
}

// decodePageHashes opens a framed blob's page hashes (in place: sealed is
// spent) and checks them.
func (r *Repository) decodePageHashes(e packEntry, sealed []byte) ([]byte, error) {
	if int64(len(sealed)) != r.pageHashesLen(e) || len(sealed) == 0 {
		return nil, fmt.Errorf("chunk %s: page hashes of %d bytes: %w", e.ID, len(sealed), ErrCorrupt)
	}
	body, err := r.openSummed(sealed, pagesAD(e.ID))
	if err != nil {
		return nil, fmt.Errorf("chunk %s page hashes: %w", e.ID, err)
	}
	return body, nil
}

// readPageHashes reads and checks the page hashes of the framed chunk at
// loc.
func (r *Repository) readPageHashes(ctx context.Context, loc chunkLoc) ([]byte, error) {
	e := loc.Entry
	tl, hl := r.frameTableLen(e), r.pageHashesLen(e)
	if hl == 0 || tl+hl > int64(e.StoredLen) {
		return nil, fmt.Errorf("chunk %s: no page hashes in a %d-byte blob: %w", e.ID, e.StoredLen, ErrCorrupt)
	}
	sealed, err := r.obj.ReadAt(ctx, pack.Name(loc.Pack), int64(e.Offset)+tl, hl)
	if err != nil {
		return nil, fmt.Errorf("read chunk %s page hashes from pack %s: %w", e.ID, loc.Pack, err)
	}
	if sealed, err = r.decodePageHashes(e, sealed); err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	return sealed, nil
}

// frameSlack is room a caller of decodeFrame leaves past a frame's
// plaintext, when it can: with at least 32 spare bytes zstd copies matches
// and literals in whole 16- and 32-byte moves, which may overrun the end of
// the output; without, it takes bounds-exact copies, and the pure-Go
// decoder (most of a restore's CPU) took about a third longer.
const frameSlack = 64

// decodeFrame checks, opens (in place) and decompresses frame i of chunk
// id into dst, which has room for the frame's plaintext; bytes of dst's
// capacity past its length may be overwritten (frameSlack).
func (r *Repository) decodeFrame(id ChunkID, i int, f frame, stored, dst []byte) error {
	if xxh3.Hash(stored) != f.sum {
		return fmt.Errorf("chunk %s frame %d: checksum mismatch: %w", id, i, ErrCorrupt)
	}
	plain, err := r.seal.openInPlace(stored, frameAD(id, i))
	if err != nil {
		return fmt.Errorf("chunk %s frame %d: %w", id, i, err)
	}
	if f.compressed {
		n, err := r.codec.Decompress(dst, plain)
		if err != nil {
			return fmt.Errorf("decompress chunk %s frame %d: %v: %w", id, i, err, ErrCorrupt)
		}
		plain = dst[:n]
	}
	if int64(len(plain)) != f.raw {
		return fmt.Errorf("chunk %s frame %d holds %d bytes, want %d: %w", id, i, len(plain), f.raw, ErrCorrupt)
	}
	if !f.compressed {
		copy(dst, plain)
	}
	return nil
}

// decodeFramed decodes a whole framed blob into dst (grown when short) and
// checks that it hashes to the chunk ID.
func (r *Repository) decodeFramed(e packEntry, stored, dst []byte) ([]byte, error) {
	tl := r.frameTableLen(e)
	if tl > int64(len(stored)) || len(stored) != int(e.StoredLen) {
		return nil, fmt.Errorf("chunk %s: %d stored bytes, too few for its frame table: %w", e.ID, len(stored), ErrCorrupt)
	}
	frames, err := r.decodeFrameTable(e, stored[:tl], nil)
	if err != nil {
		return nil, err
	}
	if cap(dst) < int(e.RawLen) {
		dst = bigbuf.Make(int(e.RawLen))
	}
	dst = dst[:e.RawLen]
	fs := frameSizeOf(e.Flags)
	for i, f := range frames {
		if err := r.decodeFrame(e.ID, i, f, stored[f.off:f.off+f.n], dst[int64(i)*fs:int64(i)*fs+f.raw]); err != nil {
			return nil, err
		}
	}
	if r.hash.id(dst) != e.ID {
		return nil, fmt.Errorf("chunk %s does not hash to its ID: %w", e.ID, ErrCorrupt)
	}
	return dst, nil
}

// frameBuffers are the reusable buffers of one range read or restore of a
// framed blob.
type frameBuffers struct {
	read   erasure.ReadBuffers
	table  []byte
	frames []frame
	plain  []byte // restore only: a range read's frames go to the cache
}

// readFrameTable reads and checks the frame table of the framed chunk at
// loc into fb.frames.
func (r *Repository) readFrameTable(ctx context.Context, loc chunkLoc, fb *frameBuffers) error {
	e := loc.Entry
	tl := r.frameTableLen(e)
	if tl > int64(e.StoredLen) {
		return fmt.Errorf("chunk %s: frame table of %d bytes in a %d-byte blob: %w", e.ID, tl, e.StoredLen, ErrCorrupt)
	}
	sealed, err := r.obj.ReadAtInto(ctx, pack.Name(loc.Pack), int64(e.Offset), tl, &fb.read)
	if err != nil {
		return fmt.Errorf("read chunk %s frame table from pack %s: %w", e.ID, loc.Pack, err)
	}
	fb.table = append(fb.table[:0], sealed...)
	if fb.frames, err = r.decodeFrameTable(e, fb.table, fb.frames); err != nil {
		return fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	return nil
}

// restoreReadBytes bounds the stored bytes a restore reads at once from a
// framed blob. With 16 fetches in flight, buffers the size of a 4 MiB
// chunk (shard range, reassembly, plaintext) were 200 MiB touched once:
// more page faults per GiB restored than anything else in the process.
const restoreReadBytes = 128 << 10

// targetError is a failure of the restore's target: no other copy of the
// chunk would do better, so it is not retried.
type targetError struct{ err error }

func (e targetError) Error() string { return e.err.Error() }
func (e targetError) Unwrap() error { return e.err }

// writeFramed writes the first n bytes of the framed chunk at loc to w at
// off, frame by frame, reading at most restoreReadBytes at a time, and
// checks the chunk's ID over all of it at the end: a chunk that fails
// fails the restore, whose target is then incomplete anyway.
func (r *Repository) writeFramed(ctx context.Context, loc chunkLoc, w restoreWriter, off, n int64, fb *frameBuffers) error {
	e := loc.Entry
	if n > int64(e.RawLen) {
		return fmt.Errorf("chunk %s holds %d bytes, need %d: %w", e.ID, e.RawLen, n, ErrCorrupt)
	}
	if err := r.readFrameTable(ctx, loc, fb); err != nil {
		return err
	}
	frames, fs := fb.frames, frameSizeOf(e.Flags)
	if cap(fb.plain) < int(fs)+frameSlack {
		fb.plain = make([]byte, fs+frameSlack)
	}
	hh := r.hash.stream()
	for i := 0; i < len(frames); {
		j := i + 1
		for j < len(frames) && frames[j].off+frames[j].n-frames[i].off <= restoreReadBytes {
			j++
		}
		a, b := frames[i].off, frames[j-1].off+frames[j-1].n
		stored, err := r.obj.ReadAtInto(ctx, pack.Name(loc.Pack), int64(e.Offset)+a, b-a, &fb.read)
		if err != nil {
			return fmt.Errorf("read chunk %s frames %d-%d from pack %s: %w", e.ID, i, j-1, loc.Pack, err)
		}
		for k := i; k < j; k++ {
			f := frames[k]
			plain := fb.plain[:f.raw]
			if err := r.decodeFrame(e.ID, k, f, stored[f.off-a:f.off-a+f.n], plain); err != nil {
				return fmt.Errorf("pack %s: %w", loc.Pack, err)
			}
			_, _ = hh.Write(plain)
			if start := int64(k) * fs; start < n {
				if err := w.write(plain[:min(f.raw, n-start)], off+start); err != nil {
					return err
				}
			}
		}
		i = j
	}
	var id ChunkID
	if hh.Sum(id[:0]); id != e.ID {
		return fmt.Errorf("chunk %s does not hash to its ID: %w", e.ID, ErrCorrupt)
	}
	return nil
}

// readFramed copies bytes [off, off+len(p)) of the framed chunk at loc into
// p, fetching and decoding only the frames that hold them. Each frame is
// authenticated on its own; the chunk ID, a hash of the whole chunk, is
// checked only by whole reads (restore, verify).
//
// A frame the read covers whole is decoded straight into p and not cached:
// its reader has it, and a sequential reader (nbdcopy through an NBD
// export) reads each byte once. Loading such reads' chunks whole through
// the chunk cache instead cost a copy out of the cache, a hash of the
// whole chunk and, while the cache filled, fresh memory: measured here,
// 1.3 to 3.3 s of CPU per GiB read through NBD, against 0.6 to 0.7 frame
// by frame. A frame the read covers in part goes through the frame cache,
// since the next read (a random 4 KiB read's neighbour, a sequential
// reader's next small read) is likely to want more of it.
func (r *Repository) readFramed(ctx context.Context, loc chunkLoc, off int64, p []byte, fb *frameBuffers) error {
	e := loc.Entry
	if off < 0 || off+int64(len(p)) > int64(e.RawLen) {
		return fmt.Errorf("read [%d, %d) of chunk %s of %d bytes: %w", off, off+int64(len(p)), e.ID, e.RawLen, ErrCorrupt)
	}
	if len(p) == 0 {
		return nil
	}
	fs := frameSizeOf(e.Flags)
	first, last := int(off/fs), int((off+int64(len(p))-1)/fs)
	end := off + int64(len(p))
	copyOut := func(i int, plain []byte) {
		start := int64(i) * fs
		lo, hi := max(off, start), min(end, start+int64(len(plain)))
		copy(p[lo-off:hi-off], plain[lo-start:hi-start])
	}
	// Frames read before come from the frame cache, with no I/O.
	cached := true
	for i := first; i <= last && cached; i++ {
		cached = r.frames.has(frameKey{e.ID, e.Flags, uint32(i)})
	}
	if cached {
		for i := first; i <= last; i++ {
			s, ok := r.frames.get(frameKey{e.ID, e.Flags, uint32(i)})
			if !ok {
				cached = false // evicted meanwhile: read them all
				break
			}
			copyOut(i, s.b)
			s.release()
		}
		if cached {
			return nil
		}
	}
	if !coversFrame(off, end, int64(e.RawLen), fs) {
		ctx = store.Scattered(ctx)
	}
	frames, err := r.frameTable(ctx, loc, fb)
	if err != nil {
		return err
	}
	a, b := frames[first].off, frames[last].off+frames[last].n
	stored, err := r.obj.ReadAtInto(ctx, pack.Name(loc.Pack), int64(e.Offset)+a, b-a, &fb.read)
	if err != nil {
		return fmt.Errorf("read chunk %s frames %d-%d from pack %s: %w", e.ID, first, last, loc.Pack, err)
	}
	for i := first; i <= last; i++ {
		f := frames[i]
		in := stored[f.off-a : f.off-a+f.n]
		if start := int64(i) * fs; off <= start && start+f.raw <= end {
			// The decoder may write past the frame (frameSlack) into
			// the frames after it, which are decoded later, but never
			// past p.
			dst := p[start-off : start-off+f.raw : len(p)]
			if err := r.decodeFrame(e.ID, i, f, in, dst); err != nil {
				return fmt.Errorf("pack %s: %w", loc.Pack, err)
			}
			continue
		}
		plain := r.framePlains.Get(int(f.raw + frameSlack))[:f.raw]
		if err := r.decodeFrame(e.ID, i, f, in, plain); err != nil {
			r.framePlains.Put(plain)
			return fmt.Errorf("pack %s: %w", loc.Pack, err)
		}
		s := newShared(plain, r.framePlains)
		r.frames.add(frameKey{e.ID, e.Flags, uint32(i)}, s)
		copyOut(i, s.b)
		s.release()
	}
	return nil
}

// coversFrame reports whether [off, end) of a chunk of rawLen bytes in
// frames of fs covers one of them whole. One that does not is taken for a
// random read, which the stores then do not read ahead of (see
// store.Scattered); one that does may be a sequential reader's.
func coversFrame(off, end, rawLen, fs int64) bool {
	start := (off + fs - 1) / fs * fs // the first frame starting in the range
	return start < end && min(start+fs, rawLen) <= end
}

// chunkPlace names one stored copy of a chunk: a decoded frame table in
// the table cache, a whole-chunk fetch in Repository.fetching.
type chunkPlace struct {
	pack PackID
	id   ChunkID
}

func placeOf(loc chunkLoc) chunkPlace { return chunkPlace{loc.Pack, loc.ID} }

// frameTable returns the frame table of the framed chunk at loc, from the
// table cache or read into it: a chunk read in many small reads (an NBD
// client's requests of 256 KiB, a random reader's 4 KiB) reads and opens
// its table once. The result is shared: callers must not modify it.
func (r *Repository) frameTable(ctx context.Context, loc chunkLoc, fb *frameBuffers) ([]frame, error) {
	k := placeOf(loc)
	if t, ok := r.tables.Get(k); ok {
		return t, nil
	}
	if err := r.readFrameTable(ctx, loc, fb); err != nil {
		return nil, err
	}
	t := slices.Clone(fb.frames)
	r.tables.Add(k, t, int64(len(t)))
	return t, nil
}

// frameKey names a decoded frame in the frame cache. The flags carry the
// frame size: the same chunk stored with another size has other frames.
type frameKey struct {
	id    ChunkID
	flags uint8
	i     uint32
}

// UpgradeReport says what Upgrade did.
type UpgradeReport struct {
	From, To int // format versions (the config's "version")
}

// Upgrade moves a repository of format 1 (whole blobs only) to the current
// format, so that new backups store framed blobs: it rewrites the config in
// every shard store with the new version and nothing else. Old blobs stay
// as they are and readable. Releases of cairn that predate frames refuse
// the repository afterwards (unsupported version) instead of misreading
// it. An upgrade cut off midway leaves copies of both versions; the
// majority decides what opens, and running Upgrade again completes it.
func (r *Repository) Upgrade(ctx context.Context) (UpgradeReport, error) {
	rep := UpgradeReport{From: r.cfg.Version, To: configVersion}
	if r.cfg.Version >= configVersion {
		rep.To = r.cfg.Version
	}
	next := *r.cfg
	next.Version = rep.To
	cb, err := json.MarshalIndent(&next, "", "  ")
	if err != nil {
		return rep, err
	}
	// Every copy, also when this process already reads the new version:
	// that completes an upgrade another run left half done.
	for i, s := range r.stores {
		if err := s.Put(ctx, configName, cb); err != nil {
			return rep, fmt.Errorf("write config to shard store %d (%s): %w; run `cairn repo upgrade` again", i, s, err)
		}
	}
	r.cfg = &next
	r.frameShift = r.framePref
	return rep, nil
}
