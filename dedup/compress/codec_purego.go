//go:build !cgo

package compress

import (
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// Codec wraps the pure-Go encoder and decoder, each with one stream per
// core; calls beyond that wait.
type Codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// New returns a codec.
func New() *Codec {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true),
		// Chunks carry xxh3 and are checked against their keyed hash:
		// zstd's own frame checksum would be a third pass.
		zstd.WithEncoderCRC(false))
	// DecodeAll stops at the capacity it is given, so no window limit
	// beyond that is needed.
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true))
	return &Codec{enc: enc, dec: dec}
}

func (c *Codec) compress(dst, src []byte) []byte { return c.enc.EncodeAll(src, dst[:0]) }

func (c *Codec) decompress(dst, src []byte) (int, error) {
	out, err := c.dec.DecodeAll(src, dst[:0])
	if err != nil {
		return 0, err
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		return 0, fmt.Errorf("frame decodes to more than %d bytes", len(dst))
	}
	return len(out), nil
}

// Close stops the encoder's and decoder's goroutines.
func (c *Codec) Close() {
	_ = c.enc.Close()
	c.dec.Close()
}
