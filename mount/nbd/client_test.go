package nbd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// testClient speaks the raw protocol, so that tests can send both good and
// broken messages. Every method fails the test on an I/O error.
type testClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

const testTimeout = 10 * time.Second

func newTestClient(t testing.TB, c net.Conn) *testClient {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, c: c, br: bufio.NewReader(c)}
}

// startServer serves cat on a loopback port; the server is shut down when
// the test ends, and Serve must then return.
func startServer(t testing.TB, cat Catalog, o Options) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cat, o)
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String()
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return newTestClient(t, c)
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) readFull(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// handshake reads the greeting and answers with client flags.
func (c *testClient) handshake(flags uint32) {
	c.t.Helper()
	g := c.readFull(18)
	if binary.BigEndian.Uint64(g) != magicInit || binary.BigEndian.Uint64(g[8:]) != magicOption {
		c.t.Fatalf("bad greeting %x", g)
	}
	if hf := binary.BigEndian.Uint16(g[16:]); hf != flagFixedNewstyle|flagNoZeroes {
		c.t.Fatalf("handshake flags %#x", hf)
	}
	c.write(binary.BigEndian.AppendUint32(nil, flags))
}

func optionBytes(id uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, magicOption)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func (c *testClient) option(id uint32, data []byte) { c.t.Helper(); c.write(optionBytes(id, data)) }

type optReply struct {
	opt, typ uint32
	data     []byte
}

func (c *testClient) reply() optReply {
	c.t.Helper()
	h := c.readFull(20)
	if binary.BigEndian.Uint64(h) != magicOptReply {
		c.t.Fatalf("option reply magic %x", h[:8])
	}
	r := optReply{opt: binary.BigEndian.Uint32(h[8:]), typ: binary.BigEndian.Uint32(h[12:])}
	r.data = c.readFull(int(binary.BigEndian.Uint32(h[16:])))
	return r
}

// replies reads replies to one option up to the final ACK or error.
func (c *testClient) replies() []optReply {
	c.t.Helper()
	var out []optReply
	for {
		r := c.reply()
		out = append(out, r)
		if r.typ == repAck || r.typ&(1<<31) != 0 {
			return out
		}
	}
}

func nameData(name string, tail ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	return append(append(b, name...), tail...)
}

func infoData(name string, infos ...uint16) []byte {
	b := binary.BigEndian.AppendUint16(nameData(name), uint16(len(infos)))
	for _, i := range infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

func metaData(name string, queries ...string) []byte {
	b := binary.BigEndian.AppendUint32(nameData(name), uint32(len(queries)))
	for _, q := range queries {
		b = append(b, nameData(q)...)
	}
	return b
}

// goExport negotiates structured replies and base:allocation when asked,
// then NBD_OPT_GO; it returns the export size and transmission flags.
func (c *testClient) goExport(name string, structured bool) (int64, uint16) {
	c.t.Helper()
	if structured {
		c.option(optStructuredReply, nil)
		if r := c.reply(); r.typ != repAck {
			c.t.Fatalf("structured reply: %#x", r.typ)
		}
		c.option(optSetMetaContext, metaData(name, metaBaseAllocation))
		if rs := c.replies(); len(rs) != 2 || rs[0].typ != repMetaContext {
			c.t.Fatalf("set meta context: %+v", rs)
		}
	}
	c.option(optGo, infoData(name))
	var size int64
	var flags uint16
	for _, r := range c.replies() {
		switch {
		case r.typ == repInfo && binary.BigEndian.Uint16(r.data) == infoExport:
			size, flags = int64(binary.BigEndian.Uint64(r.data[2:])), binary.BigEndian.Uint16(r.data[10:])
		case r.typ&(1<<31) != 0:
			c.t.Fatalf("NBD_OPT_GO %q: error %#x %q", name, r.typ, r.data)
		}
	}
	return size, flags
}

func requestBytes(flags, typ uint16, handle, off uint64, length uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicRequest)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	return binary.BigEndian.AppendUint32(b, length)
}

func (c *testClient) request(flags, typ uint16, handle, off uint64, length uint32, payload []byte) {
	c.t.Helper()
	c.write(append(requestBytes(flags, typ, handle, off, length), payload...))
}

// chunk is one reply message: a simple reply (simple true) or a chunk.
type chunk struct {
	simple     bool
	errno      uint32
	flags, typ uint16
	handle     uint64
	payload    []byte
}

// next reads one reply message; dataLen is the data a successful simple
// reply carries (reads without structured replies).
func (c *testClient) next(dataLen map[uint64]int) chunk {
	c.t.Helper()
	m := binary.BigEndian.Uint32(c.readFull(4))
	switch m {
	case magicSimpleReply:
		h := c.readFull(12)
		k := chunk{simple: true, errno: binary.BigEndian.Uint32(h), handle: binary.BigEndian.Uint64(h[4:])}
		if k.errno == 0 && dataLen != nil {
			k.payload = c.readFull(dataLen[k.handle])
		}
		return k
	case magicStructured:
		h := c.readFull(16)
		k := chunk{flags: binary.BigEndian.Uint16(h), typ: binary.BigEndian.Uint16(h[2:]), handle: binary.BigEndian.Uint64(h[4:])}
		k.payload = c.readFull(int(binary.BigEndian.Uint32(h[12:])))
		return k
	}
	c.t.Fatalf("reply magic %#x", m)
	return chunk{}
}

// readStructured collects one structured read reply into a buffer; it
// returns the data, the chunk types seen and the error value (0 if none).
func (c *testClient) readStructured(handle, off uint64, n int) ([]byte, []uint16, uint32) {
	c.t.Helper()
	buf := bytes.Repeat([]byte{0xee}, n)
	var types []uint16
	var errno uint32
	for {
		k := c.next(nil)
		if k.simple || k.handle != handle {
			c.t.Fatalf("unexpected reply %+v", k)
		}
		types = append(types, k.typ)
		p := k.payload
		switch k.typ {
		case replyTypeOffsetData:
			copy(buf[binary.BigEndian.Uint64(p)-off:], p[8:])
		case replyTypeOffsetHole:
			o, l := binary.BigEndian.Uint64(p)-off, binary.BigEndian.Uint32(p[8:])
			clear(buf[o : o+uint64(l)])
		case replyTypeError, replyTypeErrorOffset:
			errno = binary.BigEndian.Uint32(p)
		}
		if k.flags&replyFlagDone != 0 {
			return buf, types, errno
		}
	}
}

// expectClosed fails unless the server closes the connection (EOF or
// reset) before the deadline, draining whatever it still sends.
func (c *testClient) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("server did not close the connection")
	}
}
