package partition

import (
	"bytes"
	"errors"
	"testing"
)

const mib = 1 << 20

func read(t *testing.T, img []byte) (*Table, error) {
	t.Helper()
	tab, err := Read(bytes.NewReader(img), int64(len(img)))
	if err == nil {
		checkInvariants(t, tab, int64(len(img)))
	}
	return tab, err
}

func mustRead(t *testing.T, img []byte) *Table {
	t.Helper()
	tab, err := read(t, img)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return tab
}

// checkInvariants holds for every table Read returns, whatever the input.
func checkInvariants(t testing.TB, tab *Table, size int64) {
	t.Helper()
	seen := make(map[int]bool)
	for i, p := range tab.Partitions {
		if p.Offset < int64(tab.SectorSize) || p.Size <= 0 || p.End() > size || p.End() < p.Offset {
			t.Fatalf("partition %d [%d, +%d) is not within a disk of %d bytes past its first sector", p.Number, p.Offset, p.Size, size)
		}
		if p.Number <= 0 || seen[p.Number] || (i > 0 && tab.Partitions[i-1].Number > p.Number) {
			t.Fatalf("partition numbers not unique and ascending: %+v", tab.Partitions)
		}
		seen[p.Number] = true
	}
}

type want struct {
	number       int
	offset, size int64
}

func checkParts(t *testing.T, got []Partition, w ...want) {
	t.Helper()
	if len(got) != len(w) {
		t.Fatalf("got %d partitions %+v, want %d", len(got), got, len(w))
	}
	for i := range w {
		if got[i].Number != w[i].number || got[i].Offset != w[i].offset || got[i].Size != w[i].size {
			t.Errorf("partition %d: got number %d at %d size %d, want %+v", i, got[i].Number, got[i].Offset, got[i].Size, w[i])
		}
	}
}

func TestMBRPrimary(t *testing.T) {
	img := make([]byte, 8*mib)
	putMBR(img, 0,
		mbrSpec{status: 0x80, typ: 0x83, start: 2048, count: 4096},
		mbrSpec{},
		mbrSpec{typ: 0x82, start: 8192, count: 2048},
	)
	tab := mustRead(t, img)
	if tab.Scheme != MBR || tab.SectorSize != 512 {
		t.Fatalf("scheme %s, sector %d", tab.Scheme, tab.SectorSize)
	}
	checkParts(t, tab.Partitions, want{1, mib, 2 * mib}, want{3, 4 * mib, mib})
	p := tab.Partitions[0]
	if p.Type != "0x83" || p.TypeName != "linux" || !p.Bootable || tab.Partitions[1].Bootable {
		t.Errorf("partition 1: %+v", p)
	}
}

func TestMBRLogical(t *testing.T) {
	img := make([]byte, 16*mib)
	// Extended partition at 1 MiB over 14 MiB; two logical partitions.
	putMBR(img, 0, mbrSpec{typ: 0x83, start: 30 * 1024, count: 1024}, mbrSpec{typ: 0x05, start: 2048, count: 14 * 2048})
	putMBR(img, 2048, mbrSpec{typ: 0x83, start: 2048, count: 2048}, mbrSpec{typ: 0x05, start: 8192, count: 6144})
	putMBR(img, 2048+8192, mbrSpec{typ: 0x07, start: 2048, count: 4096})
	tab := mustRead(t, img)
	checkParts(t, tab.Partitions, want{1, 15 * mib, mib / 2}, want{5, 2 * mib, mib}, want{6, 6 * mib, 2 * mib})
	if tab.Partitions[2].TypeName != "ntfs" {
		t.Errorf("logical 6 type %q", tab.Partitions[2].TypeName)
	}
}

func TestMBRLoopingChain(t *testing.T) {
	img := make([]byte, 8*mib)
	putMBR(img, 0, mbrSpec{typ: 0x0f, start: 2048, count: 8192})
	// The EBR links to itself.
	putMBR(img, 2048, mbrSpec{typ: 0x83, start: 64, count: 64}, mbrSpec{typ: 0x05, start: 0, count: 100})
	putMBR(img, 2048+512, mbrSpec{typ: 0x83, start: 64, count: 64}, mbrSpec{typ: 0x05, start: 512, count: 100})
	tab := mustRead(t, img)
	checkParts(t, tab.Partitions, want{5, mib + 64*512, 64 * 512})
}

func TestMBROutOfBounds(t *testing.T) {
	img := make([]byte, 4*mib)
	putMBR(img, 0, mbrSpec{typ: 0x83, start: 2048, count: 2048}, mbrSpec{typ: 0x83, start: 4096, count: 8192})
	checkParts(t, mustRead(t, img).Partitions, want{1, mib, mib})

	putMBR(img, 0, mbrSpec{typ: 0x83, start: 4096, count: 8192}, mbrSpec{typ: 0x83, start: 0, count: 10})
	if _, err := read(t, img); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("only out-of-bounds entries: got %v, want ErrCorrupt", err)
	}
}

func TestNoTable(t *testing.T) {
	for name, img := range map[string][]byte{
		"zeros":    make([]byte, mib),
		"tiny":     {0x55, 0xaa},
		"empty":    nil,
		"no-entry": func() []byte { b := make([]byte, mib); putMBR(b, 0); return b }(),
		"fat-boot-sector": func() []byte {
			b := make([]byte, mib)
			putMBR(b, 0, mbrSpec{status: 0x3c, typ: 0x83, start: 1, count: 1})
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := read(t, img); !errors.Is(err, ErrNoTable) {
				t.Fatalf("got %v, want ErrNoTable", err)
			}
		})
	}
}

func TestGPT(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		img := gptImage(8*mib, ss,
			gptSpec{typ: efiType, guid: [16]byte{1}, first: uint64(mib / ss), last: uint64(2*mib/ss) - 1, name: "EFI system"},
			gptSpec{},
			gptSpec{typ: linuxType, guid: [16]byte{3}, first: uint64(2 * mib / ss), last: uint64(7*mib/ss) - 1, name: "root ☃"},
		)
		tab := mustRead(t, img)
		if tab.Scheme != GPT || tab.SectorSize != ss {
			t.Fatalf("scheme %s, sector %d; want gpt, %d", tab.Scheme, tab.SectorSize, ss)
		}
		checkParts(t, tab.Partitions, want{1, mib, mib}, want{3, 2 * mib, 5 * mib})
		p := tab.Partitions[1]
		if p.Name != "root ☃" || p.TypeName != "linux" || p.Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" ||
			p.GUID != "00000003-0000-0000-0000-000000000000" {
			t.Errorf("partition 3: %+v", p)
		}
		if tab.Partitions[0].TypeName != "efi" {
			t.Errorf("partition 1: %+v", tab.Partitions[0])
		}
	}
}

func TestGPTBackup(t *testing.T) {
	img := gptImage(4*mib, 512, gptSpec{typ: linuxType, first: 2048, last: 4095})
	img[512+40] ^= 1 // primary header: CRC no longer matches
	checkParts(t, mustRead(t, img).Partitions, want{1, mib, mib})

	img = gptImage(4*mib, 512, gptSpec{typ: linuxType, first: 2048, last: 4095})
	img[1024+32] ^= 1 // primary entries: CRC no longer matches
	checkParts(t, mustRead(t, img).Partitions, want{1, mib, mib})

	img[len(img)-512+40] ^= 1 // and the backup header
	if _, err := read(t, img); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("both copies broken: got %v, want ErrCorrupt", err)
	}
}

func TestGPTOutOfRange(t *testing.T) {
	img := gptImage(4*mib, 512,
		gptSpec{typ: linuxType, first: 2048, last: 4095},
		gptSpec{typ: linuxType, first: 4096, last: 1 << 40}, // past the disk
		gptSpec{typ: linuxType, first: 10, last: 20},        // over the entry array
		gptSpec{typ: linuxType, first: 3000, last: 2999},    // negative length
	)
	checkParts(t, mustRead(t, img).Partitions, want{1, mib, mib})
}

func TestProtectiveWithoutGPT(t *testing.T) {
	img := make([]byte, 4*mib)
	putMBR(img, 0, mbrSpec{typ: 0xee, start: 1, count: 8191})
	if _, err := read(t, img); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

func TestMBRBeatsBrokenGPT(t *testing.T) {
	img := gptImage(4*mib, 512, gptSpec{typ: linuxType, first: 2048, last: 4095})
	img[512+40] ^= 1
	img[len(img)-512+40] ^= 1
	clear(img[446:510])
	putMBR(img, 0, mbrSpec{typ: 0x83, start: 4096, count: 2048})
	tab := mustRead(t, img)
	if tab.Scheme != MBR {
		t.Fatalf("scheme %s, want mbr", tab.Scheme)
	}
	checkParts(t, tab.Partitions, want{1, 2 * mib, mib})
}

// shortReader fails every read past n bytes, like a disk that errors.
type shortReader struct {
	*bytes.Reader
	n int64
}

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.n {
		return 0, errors.New("I/O error")
	}
	return s.Reader.ReadAt(p, off)
}

func TestReadErrors(t *testing.T) {
	img := gptImage(4*mib, 512, gptSpec{typ: linuxType, first: 2048, last: 4095})
	_, err := Read(shortReader{bytes.NewReader(img), 600}, int64(len(img)))
	if err == nil {
		t.Fatal("read errors were ignored")
	}
}
