package blockdev

// BackupExtents aligns ext to blockSize (AlignExtents) for
// dedup.BackupOptions. The result is never nil: an empty list means "no
// data at all" to a backup, while nil would mean "read it all".
func BackupExtents(ext []Extent, blockSize, size int64) []Extent {
	aligned := AlignExtents(ext, blockSize, size)
	if aligned == nil {
		aligned = []Extent{}
	}
	return aligned
}
