// Package extent is the byte range of a volume: the one type that the
// package reading volumes (blockdev) and the one storing them (dedup) both
// speak, kept apart here so that neither imports the other.
package extent

// Extent is a byte range [Off, Off+Len) of a volume.
type Extent struct {
	Off int64
	Len int64
}

// End is the first byte after the extent.
func (e Extent) End() int64 { return e.Off + e.Len }
