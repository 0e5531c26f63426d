package partition

import (
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
)

// Helpers that build partition tables by hand, for the tests and the fuzz
// seeds.

type mbrSpec struct {
	status       byte
	typ          byte
	start, count uint32
}

// putMBR writes a boot sector with up to four entries at sector lba of img.
func putMBR(img []byte, lba int, es ...mbrSpec) {
	sec := img[lba*512 : lba*512+512]
	for i, e := range es {
		b := sec[446+16*i:]
		b[0], b[4] = e.status, e.typ
		binary.LittleEndian.PutUint32(b[8:], e.start)
		binary.LittleEndian.PutUint32(b[12:], e.count)
	}
	sec[510], sec[511] = 0x55, 0xaa
}

type gptSpec struct {
	typ, guid   [16]byte
	first, last uint64
	name        string
}

var (
	linuxType = guidBytes(0x0FC63DAF, 0x8483, 0x4772, [8]byte{0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4})
	efiType   = guidBytes(0xC12A7328, 0xF81F, 0x11D2, [8]byte{0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B})
)

func guidBytes(a uint32, b, c uint16, d [8]byte) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	copy(g[8:], d[:])
	return g
}

// gptImage builds a disk of size bytes with a protective MBR, a primary GPT
// at LBA 1 (entries at LBA 2) and a backup GPT at the end (entries just
// before it), holding 128 entries of which es are the first ones.
func gptImage(size int64, ss int, es ...gptSpec) []byte {
	img := make([]byte, size)
	sectors := uint64(size) / uint64(ss)
	putMBR(img, 0, mbrSpec{typ: 0xee, start: 1, count: uint32(min(sectors-1, 0xffffffff))})
	const n, esz = 128, 128
	entries := make([]byte, n*esz)
	for i, e := range es {
		b := entries[i*esz:]
		copy(b[0:], e.typ[:])
		copy(b[16:], e.guid[:])
		binary.LittleEndian.PutUint64(b[32:], e.first)
		binary.LittleEndian.PutUint64(b[40:], e.last)
		for j, c := range utf16.Encode([]rune(e.name)) {
			binary.LittleEndian.PutUint16(b[56+2*j:], c)
		}
	}
	entrySectors := uint64(n * esz / ss)
	last := sectors - 1
	first, lastUsable := 2+entrySectors, last-entrySectors-1
	put := func(cur, other, entriesLBA uint64) {
		copy(img[entriesLBA*uint64(ss):], entries)
		h := img[cur*uint64(ss):][:92]
		copy(h, "EFI PART")
		le := binary.LittleEndian
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], cur)
		le.PutUint64(h[32:], other)
		le.PutUint64(h[40:], first)
		le.PutUint64(h[48:], lastUsable)
		copy(h[56:], []byte("cairn-disk-guid!"))
		le.PutUint64(h[72:], entriesLBA)
		le.PutUint32(h[80:], n)
		le.PutUint32(h[84:], esz)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	}
	put(1, last, 2)
	put(last, 1, last-entrySectors)
	return img
}
