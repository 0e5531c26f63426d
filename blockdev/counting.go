package blockdev

import (
	"io"
	"sync/atomic"
)

// CountingWriter counts the bytes written through it to W (a restore's
// "written" figure). It is safe for concurrent use when W is.
type CountingWriter struct {
	W io.WriterAt
	n atomic.Int64
}

// WriteAt implements io.WriterAt.
func (c *CountingWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.W.WriteAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// Written is the number of bytes written so far.
func (c *CountingWriter) Written() int64 { return c.n.Load() }
