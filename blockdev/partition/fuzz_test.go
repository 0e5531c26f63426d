package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// FuzzPartitionTable feeds arbitrary disks to Read: it must not panic, must
// return ErrNoTable, ErrCorrupt or a table, and every partition of a table
// must lie within the disk. With fixCRC, the GPT checksums are recomputed
// first, so that mutations get past them into the header and entry checks.
func FuzzPartitionTable(f *testing.F) {
	mbr := make([]byte, 64<<10)
	putMBR(mbr, 0, mbrSpec{status: 0x80, typ: 0x83, start: 1, count: 16}, mbrSpec{typ: 0x05, start: 20, count: 100})
	putMBR(mbr, 20, mbrSpec{typ: 0x83, start: 2, count: 8}, mbrSpec{typ: 0x05, start: 20, count: 10})
	putMBR(mbr, 40, mbrSpec{typ: 0x07, start: 2, count: 8})
	f.Add(mbr, false)
	f.Add(gptImage(64<<10, 512, gptSpec{typ: linuxType, first: 34, last: 60, name: "p1"}, gptSpec{typ: efiType, first: 61, last: 90}), true)
	f.Add(gptImage(64<<10, 4096, gptSpec{typ: linuxType, first: 6, last: 10}), true)
	f.Add(make([]byte, 1024), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, img []byte, fixCRC bool) {
		if fixCRC {
			fixGPTChecksums(img)
		}
		tab, err := Read(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			if !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error is neither ErrNoTable nor ErrCorrupt: %v", err)
			}
			return
		}
		if tab.Scheme != MBR && tab.Scheme != GPT {
			t.Fatalf("scheme %q", tab.Scheme)
		}
		checkInvariants(t, tab, int64(len(img)))
	})
}

// fixGPTChecksums recomputes the entry array and header CRCs of a primary
// GPT header at LBA 1, for either sector size, where the header allows.
func fixGPTChecksums(img []byte) {
	le := binary.LittleEndian
	for _, ss := range []int{512, 4096} {
		if len(img) < 2*ss || string(img[ss:ss+8]) != gptSignature {
			continue
		}
		h := img[ss : 2*ss]
		hsize := int(le.Uint32(h[12:]))
		if hsize < gptMinHeader || hsize > ss {
			continue
		}
		start := le.Uint64(h[72:]) * uint64(ss)
		n := uint64(le.Uint32(h[80:])) * uint64(le.Uint32(h[84:]))
		if n <= gptMaxEntryBytes && start <= uint64(len(img)) && n <= uint64(len(img))-start {
			le.PutUint32(h[88:], crc32.ChecksumIEEE(img[start:start+n]))
		}
		le.PutUint32(h[16:], 0)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hsize]))
	}
}
