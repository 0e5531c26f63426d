package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

const (
	gptSignature     = "EFI PART"
	gptMinHeader     = 92
	gptMinEntrySize  = 128
	gptMaxEntryBytes = 4 << 20 // bound on the entry array read from an untrusted header
)

// gptHeader is the part of a GPT header Read needs.
type gptHeader struct {
	current, backup    uint64
	firstUsable        uint64
	lastUsable         uint64
	diskGUID           [16]byte
	entriesLBA         uint64
	entries, entrySize uint32
	entriesCRC         uint32
}

// readGPT looks for a GPT with 512- and then 4096-byte sectors. It returns
// ErrNoTable when no header signature is found anywhere, and ErrCorrupt
// when one is found but neither copy checks out.
func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	var errs []error
	for _, ss := range []int{512, 4096} {
		if size < int64(3*ss) {
			continue
		}
		t, err := readGPTSectors(r, size, ss)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, ErrNoTable) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, ErrNoTable
}

// readGPTSectors reads the primary GPT at LBA 1 or, failing that, the backup
// at the disk's last LBA.
func readGPTSectors(r io.ReaderAt, size int64, ss int) (*Table, error) {
	last := uint64(size/int64(ss)) - 1
	h, perr := readGPTHeader(r, ss, 1, last)
	if perr == nil {
		t, err := readGPTEntries(r, size, ss, h)
		if err == nil {
			return t, nil
		}
		perr = err
	}
	h, berr := readGPTHeader(r, ss, last, last)
	if berr == nil {
		t, err := readGPTEntries(r, size, ss, h)
		if err == nil {
			return t, nil
		}
		berr = err
	}
	if errors.Is(perr, ErrNoTable) && errors.Is(berr, ErrNoTable) {
		return nil, ErrNoTable
	}
	var re readError
	if errors.As(perr, &re) || errors.As(berr, &re) {
		return nil, re
	}
	return nil, fmt.Errorf("GPT (%d-byte sectors): primary: %v; backup: %v: %w", ss, perr, berr, ErrCorrupt)
}

// readGPTHeader reads and checks the header at lba of a disk whose last
// sector is last.
func readGPTHeader(r io.ReaderAt, ss int, lba, last uint64) (gptHeader, error) {
	var h gptHeader
	sec := make([]byte, ss)
	if err := readAt(r, sec, int64(lba)*int64(ss)); err != nil {
		return h, err
	}
	if string(sec[:8]) != gptSignature {
		return h, ErrNoTable
	}
	le := binary.LittleEndian
	hsize := le.Uint32(sec[12:])
	if hsize < gptMinHeader || hsize > uint32(ss) {
		return h, fmt.Errorf("header size %d", hsize)
	}
	want := le.Uint32(sec[16:])
	hdr := bytes.Clone(sec[:hsize])
	clear(hdr[16:20])
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return h, fmt.Errorf("header CRC %08x, want %08x", got, want)
	}
	h = gptHeader{
		current:     le.Uint64(sec[24:]),
		backup:      le.Uint64(sec[32:]),
		firstUsable: le.Uint64(sec[40:]),
		lastUsable:  le.Uint64(sec[48:]),
		entriesLBA:  le.Uint64(sec[72:]),
		entries:     le.Uint32(sec[80:]),
		entrySize:   le.Uint32(sec[84:]),
		entriesCRC:  le.Uint32(sec[88:]),
	}
	copy(h.diskGUID[:], sec[56:72])
	switch {
	case h.current != lba:
		return h, fmt.Errorf("header at LBA %d says it is at LBA %d", lba, h.current)
	case h.firstUsable == 0 || h.firstUsable > h.lastUsable || h.lastUsable > last:
		return h, fmt.Errorf("usable LBAs %d–%d on a disk of %d sectors", h.firstUsable, h.lastUsable, last+1)
	case h.entrySize < gptMinEntrySize || h.entrySize%8 != 0:
		return h, fmt.Errorf("entry size %d", h.entrySize)
	case uint64(h.entries)*uint64(h.entrySize) > gptMaxEntryBytes:
		return h, fmt.Errorf("%d entries of %d bytes", h.entries, h.entrySize)
	case h.entriesLBA == 0 || h.entriesLBA > last:
		return h, fmt.Errorf("entries at LBA %d", h.entriesLBA)
	}
	return h, nil
}

// readGPTEntries reads and checks h's entry array and returns the table.
// Partitions outside the usable range are dropped.
func readGPTEntries(r io.ReaderAt, size int64, ss int, h gptHeader) (*Table, error) {
	n := uint64(h.entries) * uint64(h.entrySize)
	if end := h.entriesLBA*uint64(ss) + n; end > uint64(size) {
		return nil, fmt.Errorf("entry array ends at %d, past the disk's %d bytes", end, size)
	}
	buf := make([]byte, n)
	if err := readAt(r, buf, int64(h.entriesLBA)*int64(ss)); err != nil {
		return nil, err
	}
	if got := crc32.ChecksumIEEE(buf); got != h.entriesCRC {
		return nil, fmt.Errorf("entry array CRC %08x, want %08x", got, h.entriesCRC)
	}
	t := &Table{Scheme: GPT, SectorSize: ss, DiskGUID: formatGUID(h.diskGUID[:])}
	le := binary.LittleEndian
	for i := range uint64(h.entries) {
		e := buf[i*uint64(h.entrySize):][:gptMinEntrySize]
		if allZero(e[:16]) {
			continue // unused entry
		}
		first, lastLBA := le.Uint64(e[32:]), le.Uint64(e[40:])
		if first < h.firstUsable || lastLBA < first || lastLBA > h.lastUsable {
			continue
		}
		off, sz, ok := span(first, lastLBA-first+1, ss, size)
		if !ok {
			continue
		}
		typ := formatGUID(e[:16])
		t.Partitions = append(t.Partitions, Partition{
			Number:   int(i) + 1,
			Offset:   off,
			Size:     sz,
			Type:     typ,
			TypeName: gptTypeNames[typ],
			GUID:     formatGUID(e[16:32]),
			Name:     utf16Name(e[56:128]),
		})
	}
	return t, nil
}

// formatGUID renders a GUID stored mixed-endian, as GPT does.
func formatGUID(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

// utf16Name decodes a NUL-terminated UTF-16LE name.
func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.ToValidUTF8(string(utf16.Decode(u)), "\uFFFD")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// gptTypeNames names the common GPT partition types.
var gptTypeNames = map[string]string{
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "efi",
	"21686148-6449-6E6F-744E-656564454649": "bios-boot",
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "linux",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "linux-root-x86-64",
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "linux-root-arm64",
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": "linux-boot",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "linux-home",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "linux-swap",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "linux-lvm",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "linux-raid",
	"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "microsoft-basic-data",
	"E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "microsoft-reserved",
}
