//go:build cgo

package compress

import (
	"runtime"

	"github.com/DataDog/zstd"
)

// Codec keeps libzstd contexts for reuse: a context holds the tables of
// one compression or decompression at a time, and making one per frame
// would allocate and fault them in again.
type Codec struct {
	free chan zstd.Ctx
}

// New returns a codec that keeps up to two contexts per core.
func New() *Codec {
	return &Codec{free: make(chan zstd.Ctx, 2*runtime.GOMAXPROCS(0))}
}

func (c *Codec) get() zstd.Ctx {
	select {
	case x := <-c.free:
		return x
	default:
		return zstd.NewCtx()
	}
}

// put keeps x unless enough are kept already; the binding frees a dropped
// context's C memory when the collector finds it.
func (c *Codec) put(x zstd.Ctx) {
	select {
	case c.free <- x:
	default:
	}
}

func (c *Codec) compress(dst, src []byte) []byte {
	if b := zstd.CompressBound(len(src)); cap(dst) < b {
		dst = make([]byte, b)
	}
	x := c.get()
	defer c.put(x)
	out, err := x.CompressLevel(dst[:cap(dst)], src, Level)
	if err != nil {
		// The destination holds the bound, so only C memory running out
		// fails, as Go's own allocations would.
		panic("compress: libzstd: " + err.Error())
	}
	return out
}

func (c *Codec) decompress(dst, src []byte) (int, error) {
	x := c.get()
	defer c.put(x)
	return x.DecompressInto(dst, src)
}

// Close lets the kept contexts go.
func (c *Codec) Close() {
	for {
		select {
		case <-c.free:
		default:
			return
		}
	}
}
