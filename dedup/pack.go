package dedup

import (
	"math"
	"strings"

	"cairn/dedup/pack"
)

// Pack format types, from package pack.
type (
	// PackID names a pack: 16 random bytes, written as 32 hex digits.
	PackID    = pack.ID
	packEntry = pack.Entry
	chunkLoc  = pack.Loc
)

// ParsePackID parses 32 hex digits.
func ParsePackID(s string) (PackID, error) { return pack.ParseID(s) }

// Flags of a stored blob.
const (
	blobCompressed = 1 << 0
)

func packHeaderAD(p PackID) []byte { return append([]byte("pack:"), p[:]...) }

// maxObjectLen is the largest logical length an object named name may have
// (erasure.New's bound): a pack holds at most the largest pack size, one
// block beyond it and a header of at most pack.MaxEntries entries; a
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
	maxPackObject     = maxPackSize + 2*maxBlockSize + 4 + pack.MaxEntries*pack.EntrySize + sealOverhead + pack.TrailerSize
	maxManifestObject = 8 + maxManifestBody + sealOverhead
	// sealOverhead bounds what sealing adds to a plaintext (nonce and tag).
	sealOverhead = 64
)
