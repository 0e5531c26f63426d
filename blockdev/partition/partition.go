package partition

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Scheme names a partition table format.
type Scheme string

// The schemes Read understands.
const (
	MBR Scheme = "mbr"
	GPT Scheme = "gpt"
)

// Table is a disk's partition table.
type Table struct {
	Scheme     Scheme `json:"scheme"`
	SectorSize int    `json:"sector_size"`
	// DiskGUID is the GPT disk GUID; for MBR, the 32-bit disk signature
	// in hex.
	DiskGUID string `json:"disk_guid,omitempty"`
	// Partitions are the valid, non-empty entries, ordered by Number.
	Partitions []Partition `json:"partitions"`
}

// Partition is one entry of a table. Offset and Size are in bytes and lie
// within the disk.
type Partition struct {
	Number   int    `json:"number"`
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`                // GPT type GUID, or MBR type as "0x83"
	TypeName string `json:"type_name,omitempty"` // "linux", "efi", … when known
	GUID     string `json:"guid,omitempty"`      // GPT unique partition GUID
	Name     string `json:"name,omitempty"`      // GPT partition name
	Bootable bool   `json:"bootable,omitempty"`  // MBR active flag
}

// End is the offset just past the partition's last byte.
func (p Partition) End() int64 { return p.Offset + p.Size }

// Read reads the partition table of the disk r of size bytes. It returns
// ErrNoTable when there is none, and an error wrapping ErrCorrupt when a
// table is there but unusable. Every partition returned lies within
// [0, size) and starts after the table's own first sector.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < mbrSize {
		return nil, ErrNoTable
	}
	t, gptErr := readGPT(r, size)
	if gptErr == nil {
		return t, nil
	}
	// A valid MBR without a protective entry wins over a broken GPT (a
	// disk repartitioned with MBR may keep GPT remnants), as in Linux.
	t, protective, err := readMBR(r, size)
	switch {
	case err == nil && !protective:
		return t, nil
	case err != nil && !errors.Is(err, ErrNoTable):
		return nil, err
	case errors.As(gptErr, new(readError)):
		return nil, gptErr
	case errors.Is(gptErr, ErrNoTable) && protective:
		return nil, fmt.Errorf("protective MBR but no GPT: %w", ErrCorrupt)
	}
	return nil, gptErr
}

// readError is a failure to read the disk, as opposed to a bad table: it is
// passed on as is, never reported as ErrCorrupt.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// readAt fills p from off, treating a short read as an error. Callers only
// read within the disk, so a short read is an I/O problem.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return readError{fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)}
}

// span converts a sector range to bytes, checking that it is non-empty, does
// not overflow and lies within (0, size]: it must not start at sector 0,
// which always holds the table itself.
func span(first, count uint64, sectorSize int, size int64) (off, n int64, ok bool) {
	ss := uint64(sectorSize)
	limit := uint64(size) / ss // whole sectors on the disk
	if first == 0 || count == 0 || first >= limit || count > limit-first {
		return 0, 0, false
	}
	return int64(first * ss), int64(count * ss), true
}

func sortPartitions(ps []Partition) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Number < ps[j].Number })
}
