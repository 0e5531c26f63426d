package dedup

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

// PackID names a pack: 16 random bytes, written as 32 hex digits.
type PackID [16]byte

func (p PackID) String() string { return hex.EncodeToString(p[:]) }

func newPackID() PackID {
	var p PackID
	if _, err := rand.Read(p[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return p
}

// ParsePackID parses 32 hex digits.
func ParsePackID(s string) (PackID, error) {
	var p PackID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("bad pack ID %q", s)
	}
	copy(p[:], b)
	return p, nil
}

// packName is the object name of a pack: fanned out by its first byte so no
// directory (or RADOS listing) grows without bound.
func packName(p PackID) string {
	s := p.String()
	return "packs/" + s[:2] + "/" + s
}

// Flags of a stored blob.
const (
	blobCompressed = 1 << 0
)

// packEntry locates one chunk inside a pack.
type packEntry struct {
	ID        ChunkID
	Offset    uint64 // of the stored blob within the pack
	StoredLen uint32 // bytes in the pack (after compression and encryption)
	RawLen    uint32 // plaintext length
	Flags     uint8
	Sum       uint64 // xxh3 of the stored bytes: cheap check before decrypting
}

const packEntrySize = 32 + 8 + 4 + 4 + 1 + 8

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
	packMagic       = "CRNP"
	packVersion     = 1
	packTrailerSize = 16
	// maxPackEntries bounds what a decoder will allocate for a header.
	maxPackEntries = 1 << 20
)

func encodePackHeader(entries []packEntry) []byte {
	b := make([]byte, 4, 4+len(entries)*packEntrySize)
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

// decodePackHeader parses a plaintext header. blobsEnd is where the blobs end
// (the header's offset): every entry must lie before it.
func decodePackHeader(b []byte, blobsEnd uint64) ([]packEntry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("pack header of %d bytes: %w", len(b), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxPackEntries || uint64(len(b)-4) != uint64(n)*packEntrySize {
		return nil, fmt.Errorf("pack header claims %d entries in %d bytes: %w", n, len(b), ErrCorrupt)
	}
	entries := make([]packEntry, n)
	p := b[4:]
	for i := range entries {
		e := &entries[i]
		copy(e.ID[:], p[:32])
		e.Offset = binary.LittleEndian.Uint64(p[32:])
		e.StoredLen = binary.LittleEndian.Uint32(p[40:])
		e.RawLen = binary.LittleEndian.Uint32(p[44:])
		e.Flags = p[48]
		e.Sum = binary.LittleEndian.Uint64(p[49:])
		if e.Offset > blobsEnd || uint64(e.StoredLen) > blobsEnd-e.Offset || e.RawLen > maxBlockSize {
			return nil, fmt.Errorf("pack entry %d (%d+%d) outside the pack's %d blob bytes: %w",
				i, e.Offset, e.StoredLen, blobsEnd, ErrCorrupt)
		}
		p = p[packEntrySize:]
	}
	return entries, nil
}

func encodePackTrailer(headerLen int) []byte {
	t := make([]byte, packTrailerSize)
	copy(t, packMagic)
	t[4] = packVersion
	binary.LittleEndian.PutUint32(t[8:], uint32(headerLen))
	return t
}

// decodePackTrailer returns the sealed header's length.
func decodePackTrailer(t []byte, packLen int64) (int64, error) {
	if len(t) != packTrailerSize || string(t[:4]) != packMagic {
		return 0, fmt.Errorf("bad pack trailer: %w", ErrCorrupt)
	}
	if t[4] != packVersion {
		return 0, fmt.Errorf("pack version %d: %w", t[4], ErrUnsupported)
	}
	if t[5]|t[6]|t[7]|t[12]|t[13]|t[14]|t[15] != 0 {
		return 0, fmt.Errorf("pack trailer reserved bytes set: %w", ErrCorrupt)
	}
	hl := int64(binary.LittleEndian.Uint32(t[8:]))
	if hl+packTrailerSize > packLen {
		return 0, fmt.Errorf("pack header length %d exceeds pack length %d: %w", hl, packLen, ErrCorrupt)
	}
	return hl, nil
}

func packHeaderAD(p PackID) []byte { return append([]byte("pack:"), p[:]...) }

// maxObjectLen is the largest logical length an object named name may have
// (erasure.New's bound): a pack holds at most the largest pack size, one
// block beyond it and a header of at most maxPackEntries entries; a
// manifest at most its largest body, sealed. Anything else is bounded by
// the erasure layer's own limit alone.
func maxObjectLen(name string) int64 {
	switch {
	case strings.HasPrefix(name, "packs/"):
		return maxPackObject
	case strings.HasPrefix(name, "manifests/"):
		return maxManifestObject
	}
	return math.MaxInt64
}

const (
	maxPackObject     = maxPackSize + 2*maxBlockSize + 4 + maxPackEntries*packEntrySize + sealOverhead + packTrailerSize
	maxManifestObject = 8 + maxManifestBody + sealOverhead
	// sealOverhead bounds what sealing adds to a plaintext (nonce and tag).
	sealOverhead = 64
)
