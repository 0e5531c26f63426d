package partition

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	mbrSize       = 512
	mbrEntries    = 446 // offset of the four 16-byte entries
	mbrSectorSize = 512
	typeEmpty     = 0x00
	typeGPT       = 0xee // protective MBR
	// maxLogical bounds the EBR chain, so a looping chain ends.
	maxLogical = 128
)

// mbrEntry is one 16-byte MBR or EBR entry.
type mbrEntry struct {
	status byte
	typ    byte
	start  uint32 // LBA, relative to something that depends on the entry
	count  uint32
}

func parseMBREntries(sec []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		b := sec[mbrEntries+16*i:]
		es[i] = mbrEntry{
			status: b[0],
			typ:    b[4],
			start:  binary.LittleEndian.Uint32(b[8:]),
			count:  binary.LittleEndian.Uint32(b[12:]),
		}
	}
	return es
}

func hasSignature(sec []byte) bool { return sec[510] == 0x55 && sec[511] == 0xaa }

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0f || typ == 0x85 }

// readMBR reads an MBR and its logical partitions. protective reports an
// entry of type 0xEE (the disk uses GPT).
func readMBR(r io.ReaderAt, size int64) (t *Table, protective bool, err error) {
	sec := make([]byte, mbrSize)
	if err := readAt(r, sec, 0); err != nil {
		return nil, false, err
	}
	if !hasSignature(sec) {
		return nil, false, ErrNoTable
	}
	es := parseMBREntries(sec)
	// A FAT or NTFS boot sector also ends in 55 AA; its "status" bytes are
	// boot code, rarely all 0x00 or 0x80 (the test Linux uses too).
	used := 0
	for _, e := range es {
		if e.status != 0 && e.status != 0x80 {
			return nil, false, ErrNoTable
		}
		if e.typ != typeEmpty {
			used++
		}
		if e.typ == typeGPT {
			protective = true
		}
	}
	if used == 0 {
		return nil, false, ErrNoTable
	}
	t = &Table{
		Scheme:     MBR,
		SectorSize: mbrSectorSize,
		DiskGUID:   fmt.Sprintf("%08x", binary.LittleEndian.Uint32(sec[440:])),
	}
	logical := 0
	for i, e := range es {
		switch {
		case e.typ == typeEmpty || e.typ == typeGPT:
		case isExtended(e.typ):
			if _, _, ok := span(uint64(e.start), uint64(e.count), mbrSectorSize, size); ok {
				ls := readLogical(r, size, e, 5+logical)
				logical += len(ls)
				t.Partitions = append(t.Partitions, ls...)
			}
		default:
			if p, ok := mbrPartition(i+1, e, 0, size); ok {
				t.Partitions = append(t.Partitions, p)
			}
		}
	}
	if len(t.Partitions) == 0 && !protective {
		return nil, false, fmt.Errorf("MBR lists %d entries, none within the disk: %w", used, ErrCorrupt)
	}
	sortPartitions(t.Partitions)
	return t, protective, nil
}

// mbrPartition turns entry e, whose start is relative to sector base, into
// a Partition, if it lies within the disk.
func mbrPartition(number int, e mbrEntry, base uint64, size int64) (Partition, bool) {
	off, n, ok := span(base+uint64(e.start), uint64(e.count), mbrSectorSize, size)
	if !ok {
		return Partition{}, false
	}
	typ := fmt.Sprintf("0x%02x", e.typ)
	return Partition{
		Number:   number,
		Offset:   off,
		Size:     n,
		Type:     typ,
		TypeName: mbrTypeNames[e.typ],
		Bootable: e.status == 0x80,
	}, true
}

// readLogical walks the EBR chain of extended partition ext. Each EBR's
// first entry is a logical partition relative to the EBR; its second links
// to the next EBR, relative to the extended partition's start. A broken or
// looping chain ends the walk; what was read so far is kept. Logical
// partitions must lie within the extended partition; they are numbered from
// first.
func readLogical(r io.ReaderAt, size int64, ext mbrEntry, first int) []Partition {
	var out []Partition
	extStart, extEnd := uint64(ext.start), uint64(ext.start)+uint64(ext.count)
	seen := make(map[uint64]bool)
	sec := make([]byte, mbrSize)
	next := extStart
	for len(seen) < maxLogical {
		if seen[next] || next < extStart || next >= extEnd {
			break
		}
		seen[next] = true
		if readAt(r, sec, int64(next)*mbrSectorSize) != nil || !hasSignature(sec) {
			break
		}
		es := parseMBREntries(sec)
		if l := es[0]; l.typ != typeEmpty && !isExtended(l.typ) {
			end := next + uint64(l.start) + uint64(l.count)
			if end <= extEnd && l.start > 0 {
				if p, ok := mbrPartition(first+len(out), l, next, size); ok {
					out = append(out, p)
				}
			}
		}
		link := es[1]
		if !isExtended(link.typ) || link.start == 0 {
			break
		}
		next = extStart + uint64(link.start)
	}
	return out
}

// mbrTypeNames names the common MBR partition types.
var mbrTypeNames = map[byte]string{
	0x01: "fat12",
	0x04: "fat16",
	0x06: "fat16",
	0x07: "ntfs",
	0x0b: "fat32",
	0x0c: "fat32",
	0x0e: "fat16",
	0x82: "linux-swap",
	0x83: "linux",
	0x8e: "linux-lvm",
	0xef: "efi",
	0xfd: "linux-raid",
}
