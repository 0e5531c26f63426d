package blockdev

import "cairn/dedup"

// BackupExtents aligns ext to blockSize (AlignExtents) and converts it for
// dedup.BackupOptions. The result is never nil: an empty list means "no
// data at all" to a backup, while nil would mean "read it all".
func BackupExtents(ext []Extent, blockSize, size int64) []dedup.Extent {
	aligned := AlignExtents(ext, blockSize, size)
	out := make([]dedup.Extent, 0, len(aligned))
	for _, e := range aligned {
		out = append(out, dedup.Extent{Off: e.Off, Len: e.Len})
	}
	return out
}
