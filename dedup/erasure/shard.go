package erasure

import (
	"encoding/binary"
	"fmt"

	"github.com/zeebo/xxh3"

	"cairn/internal/bigbuf"
)

// A shard object is one of the k+m pieces of an erasure-coded object (a pack
// or a manifest), stored in the shard store of its index. Layout:
//
//	offset 0  magic "CRNS"
//	       4  version (2; 1 is still read)
//	       5  k, 6 m, 7 shard index
//	       8  logical length of the whole object (uint64 LE)
//	      16  shard data length S (uint64 LE)
//	      24  checksum block size B (uint32 LE)
//	      28  object tag: low 32 bits of xxh3-64 of the object name
//	          (uint32 LE); zero in version 1
//	      32  xxh3-64 of bytes [0,32) followed by the checksum table
//	      40  checksum table: xxh3-64 of each B-byte block of shard data
//	          (the last block may be short), ceil(S/B) entries of 8 bytes
//	 40+8n    shard data, S bytes
//
// The fixed header plus table let a reader verify any block-aligned range of
// a shard without reading the rest of it. The object tag binds a shard to
// the object it was cut from: a shard copied over another object's shard
// passes its own checksums, and only the tag tells that it does not belong.
const (
	shardMagic      = "CRNS"
	shardVersion    = 2
	shardHeaderSize = 40
)

// ShardHeader is the decoded header of a shard object.
type ShardHeader struct {
	Version     int
	Tag         uint32 // objectTag of the object's name; 0 in version 1
	K, M, Index int
	ObjectLen   int64 // of the whole object
	ShardLen    int64 // of this shard's data
	BlockSize   int   // checksum block size
	Sums        []uint64
}

func (h *ShardHeader) blocks() int {
	if h.ShardLen == 0 {
		return 0
	}
	return int((h.ShardLen + int64(h.BlockSize) - 1) / int64(h.BlockSize))
}

// DataOffset is where shard data starts inside the shard object.
func (h *ShardHeader) DataOffset() int64 { return shardHeaderSize + 8*int64(h.blocks()) }

// objectTag is what a shard header records of its object's name. It is not
// keyed: it catches shards put under the wrong name, not forgeries by
// someone who can rewrite the header and its checksum.
func objectTag(name string) uint32 { return uint32(xxh3.HashString(name)) }

// belongsTo reports whether the shard was written for object name. Version-1
// shards carry no tag and cannot tell.
func (h *ShardHeader) belongsTo(name string) bool {
	return h.Version < 2 || h.Tag == objectTag(name)
}

// encodeShard builds the shard object for data, a shard of object name.
func encodeShard(name string, k, m, index int, objectLen int64, blockSize int, data []byte) []byte {
	obj := newShardObject(len(data), blockSize)
	copy(obj[len(obj)-len(data):], data)
	sealShard(obj, len(data), k, m, index, objectLen, blockSize, objectTag(name))
	return obj
}

// newShardObject allocates a shard object with room for shardLen bytes of
// data at its end, so erasure coding can write shards in place.
func newShardObject(shardLen, blockSize int) []byte {
	return bigbuf.Make(shardObjectLen(shardLen, blockSize))
}

// shardObjectLen is the size of a shard object holding shardLen bytes.
func shardObjectLen(shardLen, blockSize int) int {
	n := (shardLen + blockSize - 1) / blockSize
	return shardHeaderSize + 8*n + shardLen
}

// sealShard fills in the header and checksum table of a shard object made by
// newShardObject whose data region (its last shardLen bytes) is written.
func sealShard(out []byte, shardLen, k, m, index int, objectLen int64, blockSize int, tag uint32) {
	n := (shardLen + blockSize - 1) / blockSize
	data := out[len(out)-shardLen:]
	copy(out, shardMagic)
	out[4] = shardVersion
	out[5], out[6], out[7] = byte(k), byte(m), byte(index)
	binary.LittleEndian.PutUint64(out[8:], uint64(objectLen))
	binary.LittleEndian.PutUint64(out[16:], uint64(len(data)))
	binary.LittleEndian.PutUint32(out[24:], uint32(blockSize))
	binary.LittleEndian.PutUint32(out[28:], tag)
	for i := 0; i < n; i++ {
		end := min((i+1)*blockSize, len(data))
		binary.LittleEndian.PutUint64(out[shardHeaderSize+8*i:], xxh3.Hash(data[i*blockSize:end]))
	}
	binary.LittleEndian.PutUint64(out[32:shardHeaderSize], headerSum(out[:shardHeaderSize+8*n]))
}

func headerSum(prefix []byte) uint64 {
	h := xxh3.New()
	_, _ = h.Write(prefix[:32])
	_, _ = h.Write(prefix[shardHeaderSize:])
	return h.Sum64()
}

// parseShardFixed decodes the fixed 40-byte header; the caller then reads the
// checksum table whose length it implies.
func parseShardFixed(b []byte) (*ShardHeader, error) {
	if len(b) < shardHeaderSize {
		return nil, fmt.Errorf("shard header of %d bytes: %w", len(b), ErrCorrupt)
	}
	if string(b[:4]) != shardMagic {
		return nil, fmt.Errorf("bad shard magic: %w", ErrCorrupt)
	}
	if b[4] != 1 && b[4] != shardVersion {
		return nil, fmt.Errorf("shard version %d: %w", b[4], ErrUnsupported)
	}
	h := &ShardHeader{
		Version: int(b[4]),
		Tag:     binary.LittleEndian.Uint32(b[28:]),
		K:       int(b[5]), M: int(b[6]), Index: int(b[7]),
		ObjectLen: int64(binary.LittleEndian.Uint64(b[8:])),
		ShardLen:  int64(binary.LittleEndian.Uint64(b[16:])),
		BlockSize: int(binary.LittleEndian.Uint32(b[24:])),
	}
	if h.Version == 1 && h.Tag != 0 {
		return nil, fmt.Errorf("shard header reserved bytes set: %w", ErrCorrupt)
	}
	// S must be exactly ceil(L/k), as writers cut it: checked before the
	// header checksum, it stops one damaged length byte from sizing a
	// checksum-table read of up to 128 MiB.
	if h.K == 0 || h.Index >= h.K+h.M || h.BlockSize < 512 || h.BlockSize > 64<<20 ||
		h.ObjectLen < 0 || h.ObjectLen > maxObject ||
		h.ShardLen != (h.ObjectLen+int64(h.K)-1)/int64(h.K) {
		return nil, fmt.Errorf("shard header fields out of range: %w", ErrCorrupt)
	}
	return h, nil
}

// ParseShardPrefix decodes header and checksum table from the object's first
// bytes (at least dataOffset of them) and checks the header checksum.
func ParseShardPrefix(b []byte) (*ShardHeader, error) {
	h, err := parseShardFixed(b)
	if err != nil {
		return nil, err
	}
	n := h.blocks()
	if int64(len(b)) < h.DataOffset() {
		return nil, fmt.Errorf("shard checksum table truncated: %w", ErrCorrupt)
	}
	prefix := b[:h.DataOffset()]
	if binary.LittleEndian.Uint64(prefix[32:]) != headerSum(prefix) {
		return nil, fmt.Errorf("shard header checksum mismatch: %w", ErrCorrupt)
	}
	h.Sums = make([]uint64, n)
	for i := range h.Sums {
		h.Sums[i] = binary.LittleEndian.Uint64(prefix[shardHeaderSize+8*i:])
	}
	return h, nil
}

// verifyRange checks data, which holds shard bytes starting at the
// block-aligned offset off, against the checksum table. It returns the index
// of the first bad block or -1.
func (h *ShardHeader) verifyRange(off int64, data []byte) int {
	bs := h.BlockSize
	first := int(off / int64(bs))
	for i := 0; i*bs < len(data); i++ {
		end := min((i+1)*bs, len(data))
		if first+i >= len(h.Sums) || xxh3.Hash(data[i*bs:end]) != h.Sums[first+i] {
			return first + i
		}
	}
	return -1
}
