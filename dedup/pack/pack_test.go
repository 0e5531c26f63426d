package pack

import (
	"bytes"
	"testing"
)

// Fuzz targets for the pack decoders: stored bytes may be damaged or
// hostile; decoders return an error, never panic or allocate without bound,
// and what they accept re-encodes to itself.

func FuzzDecodePackHeader(f *testing.F) {
	entries := []Entry{
		{ID: ChunkID{1}, Offset: 0, StoredLen: 100, RawLen: 65536, Flags: 1, Sum: 42},
		{ID: ChunkID{2, 3}, Offset: 100, StoredLen: 65536, RawLen: 65536, Sum: 1 << 63},
	}
	f.Add(EncodeHeader(nil), uint64(0))
	f.Add(EncodeHeader(entries[:1]), uint64(100))
	f.Add(EncodeHeader(entries), uint64(65636))
	f.Add(EncodeHeader(entries), uint64(65635))
	f.Fuzz(func(t *testing.T, b []byte, blobsEnd uint64) {
		got, err := DecodeHeader(b, blobsEnd, 16<<20)
		if err != nil {
			return
		}
		for i, e := range got {
			if e.Offset+uint64(e.StoredLen) > blobsEnd || e.Offset+uint64(e.StoredLen) < e.Offset {
				t.Fatalf("entry %d (%d+%d) accepted beyond %d", i, e.Offset, e.StoredLen, blobsEnd)
			}
		}
		if !bytes.Equal(EncodeHeader(got), b) {
			t.Fatal("pack header does not re-encode to itself")
		}
	})
}

func FuzzDecodePackTrailer(f *testing.F) {
	f.Add(EncodeTrailer(0), int64(TrailerSize))
	f.Add(EncodeTrailer(4+EntrySize), int64(1<<20))
	f.Add(EncodeTrailer(1<<31), int64(1<<31))
	f.Fuzz(func(t *testing.T, b []byte, packLen int64) {
		hl, err := DecodeTrailer(b, packLen)
		if err != nil {
			return
		}
		if hl < 0 || hl+TrailerSize > packLen {
			t.Fatalf("header length %d accepted for a pack of %d bytes", hl, packLen)
		}
		if again, err := DecodeTrailer(EncodeTrailer(int(hl)), packLen); err != nil || again != hl {
			t.Fatalf("trailer round trip: %d, %v; want %d", again, err, hl)
		}
	})
}
