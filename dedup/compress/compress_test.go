package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// inputs are the kinds of data a chunk holds.
func inputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 200<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("cairn stores each block once; "), 5000)
	mixed := append(append([]byte{}, text[:60<<10]...), random[:70<<10]...)
	return map[string][]byte{
		"one byte": {7},
		"zeros":    make([]byte, 128<<10),
		"text":     text,
		"random":   random,
		"mixed":    mixed,
		"4 MiB":    bytes.Repeat(mixed, 32),
	}
}

func TestRoundTrip(t *testing.T) {
	c := New()
	defer c.Close()
	for name, in := range inputs() {
		t.Run(name, func(t *testing.T) {
			z := c.Compress(make([]byte, 0, 16), in)
			if err := checkFrame(z); err != nil {
				t.Fatalf("Compress wrote something checkFrame refuses: %v", err)
			}
			dst := make([]byte, len(in))
			n, err := c.Decompress(dst, z)
			if err != nil || n != len(in) || !bytes.Equal(dst, in) {
				t.Fatalf("Decompress = %d, %v; want the %d bytes back", n, err, len(in))
			}
		})
	}
}

// TestOtherCodec reads frames of the pure-Go encoder (every repository
// written before the cgo codec, and any build without cgo) and has the
// pure-Go decoder read this build's.
func TestOtherCodec(t *testing.T) {
	c := New()
	defer c.Close()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false))
	defer enc.Close()
	crc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	defer crc.Close()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for name, in := range inputs() {
		for _, e := range []struct {
			name string
			enc  *zstd.Encoder
		}{{"default", enc}, {"checksum", crc}} {
			dst := make([]byte, len(in))
			n, err := c.Decompress(dst, e.enc.EncodeAll(in, nil))
			if err != nil || n != len(in) || !bytes.Equal(dst, in) {
				t.Errorf("%s, pure-Go encoder (%s): Decompress = %d, %v", name, e.name, n, err)
			}
		}
		out, err := dec.DecodeAll(c.Compress(nil, in), nil)
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("%s: the pure-Go decoder reads %d bytes, %v", name, len(out), err)
		}
	}
}

func TestDecompressRefuses(t *testing.T) {
	c := New()
	defer c.Close()
	in := inputs()["mixed"]
	z := c.Compress(nil, in)
	// Without a checksum, zstd cannot tell changed data from the data it
	// wrote (the chunk ID does, a layer up); a changed block type it can.
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		t.Fatal(err)
	}
	reserved := append([]byte{}, z...)
	reserved[h.HeaderSize] |= 6
	legacy := binary.LittleEndian.AppendUint32(nil, 0xFD2FB527)
	legacy = append(legacy, z[4:]...)
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184D2A50)
	skippable = binary.LittleEndian.AppendUint32(skippable, 4)
	skippable = append(skippable, 1, 2, 3, 4)
	for _, tc := range []struct {
		name string
		src  []byte
		room int
	}{
		{"empty", nil, len(in)},
		{"legacy magic", legacy, len(in)},
		{"skippable frame", skippable, len(in)},
		{"truncated", z[:len(z)-10], len(in)},
		{"header only", z[:6], len(in)},
		{"second frame after the first", append(append([]byte{}, z...), z...), 2 * len(in)},
		{"trailing bytes", append(append([]byte{}, z...), 0, 0, 0), len(in)},
		{"reserved block type", reserved, len(in)},
		{"more than the room given", z, len(in) - 1},
		{"no room", z, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Capacity beyond the room must not let more through.
			dst := make([]byte, tc.room, tc.room+len(in))
			n, err := c.Decompress(dst, tc.src)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decompress = %d, %v; want ErrCorrupt", n, err)
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	c := New()
	defer c.Close()
	in := inputs()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				for name, b := range in {
					dst := make([]byte, len(b))
					if n, err := c.Decompress(dst, c.Compress(nil, b)); err != nil || n != len(b) || !bytes.Equal(dst, b) {
						errs <- name
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("%s: concurrent round trip failed", name)
	}
}

func FuzzDecompress(f *testing.F) {
	c := New()
	for _, in := range inputs() {
		f.Add(c.Compress(nil, in[:min(len(in), 4096)]), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, src []byte, room uint16) {
		dst := make([]byte, int(room))
		n, err := c.Decompress(dst, src)
		if err == nil && (n > len(dst) || checkFrame(src) != nil) {
			t.Fatalf("accepted %d bytes into %d of room", n, len(dst))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
	})
}
