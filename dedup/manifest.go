package dedup

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Checkpoint is the metadata of one backup of one source.
type Checkpoint struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Parent     string    `json:"parent,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at"`
	Size       int64     `json:"size"`
	BlockSize  int       `json:"block_size"`
	Hostname   string    `json:"hostname,omitempty"`
	// Full is true when every allocated block was read (no change hint).
	Full bool              `json:"full"`
	Tags map[string]string `json:"tags,omitempty"`
	Stats
}

// Stats are exact per-checkpoint size figures.
type Stats struct {
	// AllocatedBytes counts the blocks that are not holes.
	AllocatedBytes int64 `json:"allocated_bytes"`
	// ReadBytes is what was read from the source.
	ReadBytes int64 `json:"read_bytes"`
	// NewBytes is the plaintext size of chunks this checkpoint added to the
	// repository (everything else was already there).
	NewBytes  int64 `json:"new_bytes"`
	NewChunks int64 `json:"new_chunks"`
	// StoredBytes is what this checkpoint's new packs added to the shard
	// stores, after compression, encryption and parity. The manifest's own
	// shards (about 33 bytes per data block) are counted in repository stats.
	StoredBytes int64 `json:"stored_bytes"`
	Blocks      int64 `json:"blocks"`
	HoleBlocks  int64 `json:"hole_blocks"`
}

// BlockMap maps block numbers to chunks. Holes are stored as sorted runs and
// data blocks as a flat array in block order, so the map costs about 33 bytes
// per data block and almost nothing per hole.
type BlockMap struct {
	Blocks int64
	Holes  []HoleRun
	Chunks []ChunkRef
	Packs  []PackID // hints: where each chunk was when the checkpoint was made
	// holesBefore[i] is the number of hole blocks in Holes[:i].
	holesBefore []int64
}

// HoleRun is Count consecutive hole blocks starting at Start.
type HoleRun struct{ Start, Count int64 }

// ChunkRef is one data block: its chunk and a hint of its pack.
type ChunkRef struct {
	ID   ChunkID
	Pack uint32 // index into BlockMap.Packs
}

// dropUnusedPacks removes the hints no chunk refers to any more.
func (m *BlockMap) dropUnusedPacks() {
	used := make([]bool, len(m.Packs))
	for _, c := range m.Chunks {
		used[c.Pack] = true
	}
	renum := make([]uint32, len(m.Packs))
	var packs []PackID
	for i, p := range m.Packs {
		if used[i] {
			renum[i] = uint32(len(packs))
			packs = append(packs, p)
		}
	}
	for i := range m.Chunks {
		m.Chunks[i].Pack = renum[m.Chunks[i].Pack]
	}
	m.Packs = packs
}

func (m *BlockMap) prepare() {
	m.holesBefore = make([]int64, len(m.Holes)+1)
	for i, r := range m.Holes {
		m.holesBefore[i+1] = m.holesBefore[i] + r.Count
	}
}

// Lookup returns the chunk of block b, or ok=false for a hole.
func (m *BlockMap) Lookup(b int64) (ref ChunkRef, ok bool) {
	if b < 0 || b >= m.Blocks {
		return ChunkRef{}, false
	}
	if m.holesBefore == nil {
		m.prepare()
	}
	// i = number of runs starting at or before b.
	i := sort.Search(len(m.Holes), func(i int) bool { return m.Holes[i].Start > b })
	if i > 0 && b < m.Holes[i-1].Start+m.Holes[i-1].Count {
		return ChunkRef{}, false
	}
	return m.Chunks[b-m.holesBefore[i]], true
}

// Manifest object: "CRNM" ‖ version ‖ flags ‖ 2 zero bytes ‖ payload, where
// payload = seal(zstd(body)) with additional data "manifest:" ‖ ID, and body
// is uvarint-framed: meta JSON, hole runs, pack IDs, chunk refs.
const (
	manifestMagic   = "CRNM"
	manifestVersion = 1
	// Decoders refuse counts beyond these instead of allocating them.
	maxManifestBody = 1 << 32
	maxBlocks       = 1 << 36
)

// manifestBodySize returns the body length the compressed payload z
// declares, refusing one a real manifest cannot have. A body is mostly
// random chunk and pack IDs, which do not compress, so it is at most a small
// multiple of its compressed size; the slack covers metadata and hole runs.
// Checked before decompressing, it stops a few stored bytes from claiming
// gigabytes (a decompression bomb); the decoder then stops at this length.
func manifestBodySize(z []byte) (int, error) {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return 0, fmt.Errorf("manifest payload: %v: %w", err, ErrCorrupt)
	}
	limit := min(uint64(manifestExpansion)*uint64(len(z))+manifestSlack, maxManifestBody)
	if !h.HasFCS || h.FrameContentSize == 0 || h.FrameContentSize > limit {
		return 0, fmt.Errorf("manifest payload of %d bytes declares a body of %d bytes (at most %d): %w",
			len(z), h.FrameContentSize, limit, ErrCorrupt)
	}
	return int(h.FrameContentSize), nil
}

const (
	manifestExpansion = 64
	manifestSlack     = 16 << 20
)

func manifestName(id string) string { return "manifests/" + id }

func manifestAD(id string) []byte { return []byte("manifest:" + id) }

func encodeManifestBody(cp *Checkpoint, m *BlockMap) ([]byte, error) {
	meta, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(meta)+len(m.Chunks)*34+len(m.Holes)*8+len(m.Packs)*16+32)
	b = binary.AppendUvarint(b, uint64(len(meta)))
	b = append(b, meta...)
	b = binary.AppendUvarint(b, uint64(len(m.Holes)))
	for _, r := range m.Holes {
		b = binary.AppendUvarint(b, uint64(r.Start))
		b = binary.AppendUvarint(b, uint64(r.Count))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Packs)))
	for _, p := range m.Packs {
		b = append(b, p[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c.ID[:]...)
		b = binary.AppendUvarint(b, uint64(c.Pack))
	}
	return b, nil
}

type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) uvarint(limit uint64, what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > limit {
		r.err = fmt.Errorf("manifest %s: bad or out-of-range value: %w", what, ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = fmt.Errorf("manifest %s truncated: %w", what, ErrCorrupt)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// decodeManifestBody parses and validates a body. withMap=false stops after
// the metadata, which is all a listing needs.
func decodeManifestBody(b []byte, withMap bool) (*Checkpoint, *BlockMap, error) {
	r := &byteReader{b: b}
	meta := r.bytes(int(r.uvarint(uint64(len(b)), "metadata length")), "metadata")
	if r.err != nil {
		return nil, nil, r.err
	}
	cp := new(Checkpoint)
	if err := json.Unmarshal(meta, cp); err != nil {
		return nil, nil, fmt.Errorf("manifest metadata: %v: %w", err, ErrCorrupt)
	}
	if cp.BlockSize < minBlockSize || cp.BlockSize > maxBlockSize || cp.Size < 0 {
		return nil, nil, fmt.Errorf("manifest block size %d or size %d out of range: %w", cp.BlockSize, cp.Size, ErrCorrupt)
	}
	// Rounded up without adding first: Size near MaxInt64 must not wrap
	// to a negative count that passes the bound.
	blocks := cp.Size / int64(cp.BlockSize)
	if cp.Size%int64(cp.BlockSize) != 0 {
		blocks++
	}
	if blocks > maxBlocks {
		return nil, nil, fmt.Errorf("manifest size %d too large: %w", cp.Size, ErrCorrupt)
	}
	if !withMap {
		return cp, nil, nil
	}
	m := &BlockMap{Blocks: blocks}
	nh := r.uvarint(uint64(blocks), "hole count")
	var next, holes int64
	for i := uint64(0); i < nh && r.err == nil; i++ {
		run := HoleRun{Start: int64(r.uvarint(uint64(blocks), "hole start")), Count: int64(r.uvarint(uint64(blocks), "hole count"))}
		if r.err == nil && (run.Start < next || run.Count == 0 || run.Start+run.Count > blocks) {
			r.err = fmt.Errorf("manifest hole run %d out of order: %w", i, ErrCorrupt)
		}
		next = run.Start + run.Count
		holes += run.Count
		m.Holes = append(m.Holes, run)
	}
	np := r.uvarint(uint64(len(r.b)/16), "pack count")
	for i := uint64(0); i < np && r.err == nil; i++ {
		var p PackID
		copy(p[:], r.bytes(16, "pack ID"))
		m.Packs = append(m.Packs, p)
	}
	nc := r.uvarint(uint64(blocks), "chunk count")
	if r.err == nil && int64(nc) != blocks-holes {
		r.err = fmt.Errorf("manifest has %d chunks for %d data blocks: %w", nc, blocks-holes, ErrCorrupt)
	}
	if r.err == nil && nc > uint64(len(r.b)/33) {
		r.err = fmt.Errorf("manifest chunk list truncated: %w", ErrCorrupt)
	}
	if r.err == nil {
		m.Chunks = make([]ChunkRef, 0, nc)
	}
	for i := uint64(0); i < nc && r.err == nil; i++ {
		var c ChunkRef
		copy(c.ID[:], r.bytes(32, "chunk ID"))
		c.Pack = uint32(r.uvarint(uint64(max(len(m.Packs)-1, 0)), "pack index"))
		m.Chunks = append(m.Chunks, c)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("manifest has %d trailing bytes: %w", len(r.b), ErrCorrupt)
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if len(m.Chunks) > 0 && len(m.Packs) == 0 {
		return nil, nil, fmt.Errorf("manifest chunks without packs: %w", ErrCorrupt)
	}
	m.prepare()
	return cp, m, nil
}
