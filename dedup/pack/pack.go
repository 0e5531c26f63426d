// Package pack is the pack format (docs/format.md §10): the IDs of chunks
// and packs, and a pack's header of entries and its trailer. What goes in a
// blob, and how packs are sealed and erasure-coded, is the repository's.
package pack

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"cairn/dedup/erasure"
)

// ErrCorrupt is the repository's: a header or trailer that fails a check.
var ErrCorrupt = erasure.ErrCorrupt

// ErrUnsupported: a pack of a newer format.
var ErrUnsupported = erasure.ErrUnsupported

// ChunkID identifies a chunk by a keyed hash of its plaintext (the
// repository's chunk-ID key, docs/format.md §7.2).
type ChunkID [32]byte

func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// ID names a pack: 16 random bytes, written as 32 hex digits.
type ID [16]byte

func (p ID) String() string { return hex.EncodeToString(p[:]) }

// NewID returns a random pack ID.
func NewID() ID {
	var p ID
	if _, err := rand.Read(p[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return p
}

// ParseID parses 32 hex digits.
func ParseID(s string) (ID, error) {
	var p ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("bad pack ID %q", s)
	}
	copy(p[:], b)
	return p, nil
}

// Name is the object name of a pack: fanned out by its first byte so no
// directory (or RADOS listing) grows without bound.
func Name(p ID) string {
	s := p.String()
	return "packs/" + s[:2] + "/" + s
}

// Loc is where a chunk is: its pack and its entry there.
type Loc struct {
	Pack ID
	Entry
}

// Entry locates one chunk inside a pack.
type Entry struct {
	ID        ChunkID
	Offset    uint64 // of the stored blob within the pack
	StoredLen uint32 // bytes in the pack (after compression and encryption)
	RawLen    uint32 // plaintext length
	Flags     uint8
	Sum       uint64 // xxh3 of the stored bytes: cheap check before decrypting
}

// EntrySize is the encoded size of an entry.
const EntrySize = 32 + 8 + 4 + 4 + 1 + 8

// A pack's logical bytes (before erasure coding) are
//
//	blob 0 ‖ blob 1 ‖ … ‖ header ‖ trailer
//
// header = sealed(count uint32 ‖ count × entry), sealed only when the
// repository is encrypted (additional data "pack:" ‖ pack ID), and
// trailer = "CRNP" ‖ version byte ‖ 3 zero bytes ‖ header length uint32
// ‖ 4 zero bytes (16 bytes). The header lets the index be rebuilt from packs
// alone; the trailer lets a reader find the header from the pack's end.
const (
	magic   = "CRNP"
	version = 1
	// TrailerSize is the length of a pack's trailer.
	TrailerSize = 16
	// MaxEntries bounds what a decoder will allocate for a header.
	MaxEntries = 1 << 20
)

// EncodeHeader encodes the plaintext header of a pack holding entries.
func EncodeHeader(entries []Entry) []byte {
	b := make([]byte, 4, 4+len(entries)*EntrySize)
	binary.LittleEndian.PutUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint64(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.StoredLen)
		b = binary.LittleEndian.AppendUint32(b, e.RawLen)
		b = append(b, e.Flags)
		b = binary.LittleEndian.AppendUint64(b, e.Sum)
	}
	return b
}

// DecodeHeader parses a plaintext header. blobsEnd is where the blobs end
// (the header's offset): every entry must lie before it, and hold at most
// maxRaw plaintext bytes.
func DecodeHeader(b []byte, blobsEnd uint64, maxRaw uint32) ([]Entry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("pack header of %d bytes: %w", len(b), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxEntries || uint64(len(b)-4) != uint64(n)*EntrySize {
		return nil, fmt.Errorf("pack header claims %d entries in %d bytes: %w", n, len(b), ErrCorrupt)
	}
	entries := make([]Entry, n)
	p := b[4:]
	for i := range entries {
		e := &entries[i]
		copy(e.ID[:], p[:32])
		e.Offset = binary.LittleEndian.Uint64(p[32:])
		e.StoredLen = binary.LittleEndian.Uint32(p[40:])
		e.RawLen = binary.LittleEndian.Uint32(p[44:])
		e.Flags = p[48]
		e.Sum = binary.LittleEndian.Uint64(p[49:])
		if e.Offset > blobsEnd || uint64(e.StoredLen) > blobsEnd-e.Offset || e.RawLen > maxRaw {
			return nil, fmt.Errorf("pack entry %d (%d+%d) outside the pack's %d blob bytes: %w",
				i, e.Offset, e.StoredLen, blobsEnd, ErrCorrupt)
		}
		p = p[EntrySize:]
	}
	return entries, nil
}

// EncodeTrailer encodes the trailer after a header of headerLen bytes.
func EncodeTrailer(headerLen int) []byte {
	t := make([]byte, TrailerSize)
	copy(t, magic)
	t[4] = version
	binary.LittleEndian.PutUint32(t[8:], uint32(headerLen))
	return t
}

// DecodeTrailer returns the sealed header's length.
func DecodeTrailer(t []byte, packLen int64) (int64, error) {
	if len(t) != TrailerSize || string(t[:4]) != magic {
		return 0, fmt.Errorf("bad pack trailer: %w", ErrCorrupt)
	}
	if t[4] != version {
		return 0, fmt.Errorf("pack version %d: %w", t[4], ErrUnsupported)
	}
	if t[5]|t[6]|t[7]|t[12]|t[13]|t[14]|t[15] != 0 {
		return 0, fmt.Errorf("pack trailer reserved bytes set: %w", ErrCorrupt)
	}
	hl := int64(binary.LittleEndian.Uint32(t[8:]))
	if hl+TrailerSize > packLen {
		return 0, fmt.Errorf("pack header length %d exceeds pack length %d: %w", hl, packLen, ErrCorrupt)
	}
	return hl, nil
}
