package nbd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"

	"github.com/pojntfx/go-nbd/pkg/protocol"
	"golang.org/x/sync/semaphore"
)

// request is one decoded transmission request.
type request = protocol.TransmissionRequestHeader

// transmission serves requests on one connection: a reader decodes them in
// order, a bounded set of workers executes them concurrently, and replies
// go out whole, one at a time, under a write lock.
type transmission struct {
	c          *conn
	br         *bufio.Reader
	w          io.Writer
	dev        Device
	wdev       WritableDevice // nil for a read-only export
	structured bool
	meta       bool
	maxReq     int64

	wmu   sync.Mutex          // one reply at a time
	slots chan struct{}       // worker slots
	mem   *semaphore.Weighted // bytes of request buffers in flight
	wg    sync.WaitGroup      // workers
}

func newTransmission(c *conn, s *session, exp *Export) *transmission {
	o := c.s.o
	t := &transmission{
		c: c, br: s.br, w: s.w, dev: exp.Device,
		structured: s.structured, meta: s.meta,
		maxReq: int64(o.MaxRequest),
		slots:  make(chan struct{}, o.Workers),
		// Enough for two of the largest requests; beyond that the reader
		// waits for workers to finish before taking more.
		mem: semaphore.NewWeighted(max(2*int64(o.MaxRequest), 64<<20)),
	}
	t.wdev, _ = exp.Device.(WritableDevice)
	return t
}

// run reads requests until NBD_CMD_DISC, the client hangs up, a protocol
// violation or a drain. It returns after every worker has finished.
func (t *transmission) run(ctx context.Context) error {
	defer t.wg.Wait()
	hdr := make([]byte, requestHeaderLen)
	for {
		if err := t.readHeader(hdr); err != nil {
			if t.c.isDraining() {
				return nil
			}
			return errorf(err, "read request")
		}
		req, err := decodeRequest(hdr)
		if err != nil {
			return err
		}
		var payload []byte
		var held int64
		switch req.Type {
		case cmdDisc:
			return nil
		case cmdWrite:
			if int64(req.Length) > t.maxReq {
				// Keep the stream in step, then refuse.
				if _, err := io.CopyN(io.Discard, t.br, int64(req.Length)); err != nil {
					return errorf(err, "read write payload")
				}
				t.fail(req, errOverflow, "write larger than the maximum request size")
				continue
			}
			held = int64(req.Length)
			if err := t.mem.Acquire(ctx, held); err != nil {
				return err
			}
			payload = getBuf(int(req.Length))
			if _, err := io.ReadFull(t.br, payload); err != nil {
				putBuf(payload)
				t.mem.Release(held)
				return errorf(err, "read write payload")
			}
		case cmdRead:
			if int64(req.Length) <= t.maxReq {
				held = int64(req.Length)
				if err := t.mem.Acquire(ctx, held); err != nil {
					return err
				}
			}
		}
		select {
		case t.slots <- struct{}{}:
		case <-ctx.Done():
			putBuf(payload)
			t.mem.Release(held)
			return ctx.Err()
		}
		t.wg.Add(1)
		t.c.requestBegin()
		go func() {
			defer func() {
				putBuf(payload)
				t.mem.Release(held)
				<-t.slots
				t.c.requestEnd()
				t.wg.Done()
			}()
			t.handle(ctx, req, payload)
		}()
	}
}

// readHeader reads the next request header. A client with no request in
// flight for IdleTimeout is cut off (errIdle); a deadline that passes
// while requests are in flight only moves on. The payload that follows
// gets a fresh IdleTimeout.
func (t *transmission) readHeader(hdr []byte) error {
	n := 0
	for {
		t.c.armIdle()
		m, err := io.ReadFull(t.br, hdr[n:])
		n += m
		switch {
		case err == nil:
			t.c.touch()
			t.c.armIdle()
			return nil
		case !errors.Is(err, os.ErrDeadlineExceeded) || t.c.isDraining():
			return err
		case t.c.idleExpired():
			return errIdle
		}
	}
}

// send writes one whole reply. A failed write ends the connection.
func (t *transmission) send(bufs ...[]byte) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(t.w); err != nil {
		t.c.close()
	}
}

// ok sends a successful reply without payload.
func (t *transmission) ok(req request) {
	t.send(appendSimpleReply(nil, 0, req.Handle))
}

// fail sends an error reply: a structured error chunk with a message when
// structured replies are on, else a simple reply without payload.
func (t *transmission) fail(req request, errno uint32, msg string) {
	if t.structured {
		t.send(appendErrorChunk(nil, req.Handle, errno, msg, false, 0))
		return
	}
	t.send(appendSimpleReply(nil, errno, req.Handle))
}

// failAt is fail with the offset of the failure, for reads.
func (t *transmission) failAt(req request, errno uint32, msg string, off int64) {
	if t.structured {
		t.send(appendErrorChunk(nil, req.Handle, errno, msg, true, uint64(off)))
		return
	}
	t.send(appendSimpleReply(nil, errno, req.Handle))
}

// Request buffers come from power-of-two size classes, 4 KiB to 32 MiB.
const (
	minBufShift = 12
	bufClasses  = 14
)

var bufPools [bufClasses]sync.Pool

// bufClass is the smallest class holding n bytes.
func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of n bytes with unspecified contents.
func getBuf(n int) []byte {
	i := bufClass(n)
	if i >= bufClasses {
		return make([]byte, n)
	}
	if p, ok := bufPools[i].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<(minBufShift+i))
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(b []byte) {
	if b == nil {
		return
	}
	i := bufClass(cap(b))
	if i >= bufClasses || cap(b) != 1<<(minBufShift+i) {
		return
	}
	b = b[:0]
	bufPools[i].Put(&b)
}
