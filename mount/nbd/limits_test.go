package nbd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// readBlock reads 4 KiB at off on a transmitting connection (simple
// replies) and checks the bytes.
func (c *testClient) readBlock(handle uint64, off int, img []byte) {
	c.t.Helper()
	c.request(0, cmdRead, handle, uint64(off), 4096, nil)
	if k := c.next(map[uint64]int{handle: 4096}); k.errno != 0 || k.handle != handle || !bytes.Equal(k.payload, img[off:off+4096]) {
		c.t.Fatalf("read at %d: errno %d handle %d", off, k.errno, k.handle)
	}
}

// waitQuiet waits until every connection of s is in transmission with no
// request in flight: a client sees the end of the negotiation, or a
// reply, a moment before the server records it.
func waitQuiet(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		busy := false
		s.mu.Lock()
		for c := range s.conns {
			c.mu.Lock()
			busy = busy || c.inflight > 0 || !c.transmitting
			c.mu.Unlock()
		}
		s.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("requests still in flight")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleFloodDoesNotLockOut: MaxConns (256) clients finish the
// handshake and sit idle; a new client is still served, in the place of
// the longest idle one, and the others keep working.
func TestIdleFloodDoesNotLockOut(t *testing.T) {
	img := testImage()
	s, addr := startServer(t, testCatalog(&memVolume{data: img}), Options{})
	idle := make([]*testClient, defaultMaxConns)
	for i := range idle {
		idle[i] = dial(t, addr)
		idle[i].handshake(clientFlagFixedNewstyle)
		idle[i].goExport("disk", false)
		// The server records a connection's start a moment after the
		// client sees it: wait, so that idle[0] is the longest idle.
		waitQuiet(t, s)
	}
	idle[1].readBlock(1, 0, img) // used: it goes last
	waitQuiet(t, s)

	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	if size, _ := c.goExport("disk", false); size != int64(len(img)) {
		t.Fatalf("new client sees size %d", size)
	}
	c.readBlock(1, 8192, img)
	idle[0].expectClosed()
	idle[1].readBlock(2, 4096, img)
	idle[defaultMaxConns-1].readBlock(1, 0, img)
}

// TestBusyConnectionsRefuseNewClient: when every connection has a request
// in flight none is dropped for a new client, which is told why with
// NBD_REP_ERR_POLICY; once they are idle, a new client gets a place.
func TestBusyConnectionsRefuseNewClient(t *testing.T) {
	img := testImage()
	v := &memVolume{data: img, gate: make(chan struct{}), entered: make(chan struct{}, 4)}
	s, addr := startServer(t, testCatalog(v), Options{MaxConns: 2})
	var busy []*testClient
	for i := range 2 {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.goExport("disk", false)
		// Distinct blocks: reads of one block share a fetch.
		c.request(0, cmdRead, uint64(i), uint64(i)*4096, 4096, nil)
		busy = append(busy, c)
	}
	for range 2 {
		<-v.entered
	}
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.option(optGo, infoData("disk"))
	r := c.reply()
	if r.typ != repErrPolicy || !strings.Contains(string(r.data), "busy") {
		t.Fatalf("new client while all are busy: reply %#x %q, want NBD_REP_ERR_POLICY saying busy", r.typ, r.data)
	}
	c.option(optAbort, nil)
	if r := c.reply(); r.typ != repAck {
		t.Fatalf("abort: %#x", r.typ)
	}
	c.expectClosed()

	close(v.gate)
	for i, b := range busy {
		if k := b.next(map[uint64]int{uint64(i): 4096}); k.errno != 0 || !bytes.Equal(k.payload, img[i*4096:(i+1)*4096]) {
			t.Fatalf("busy client %d: errno %d", i, k.errno)
		}
	}
	waitQuiet(t, s) // so that busy[0] is the longest idle
	busy[1].readBlock(5, 0, img)
	waitQuiet(t, s)
	n := dial(t, addr)
	n.handshake(clientFlagFixedNewstyle)
	n.goExport("disk", false)
	n.readBlock(9, 4096, img)
	busy[0].expectClosed() // idle longest
	busy[1].readBlock(3, 0, img)
}

// TestHandshakeDeadlineIsTotal: a client that keeps sending options, each
// well within the timeout, is still dropped once the whole negotiation
// has taken HandshakeTimeout; so is one that stalls inside an option.
func TestHandshakeDeadlineIsTotal(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, addr := startServer(t, testCatalog(&memVolume{data: testImage()}), Options{HandshakeTimeout: timeout})

	t.Run("trickle", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		// 100 options 30 ms apart last ten times the timeout: a deadline
		// per option would never fire.
		for range 100 {
			time.Sleep(timeout / 10)
			if _, err := c.c.Write(optionBytes(optStructuredReply, nil)); err != nil {
				return // closed by the server
			}
			if _, err := io.ReadFull(c.br, make([]byte, 20)); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("client-side timeout, not a server close")
				}
				return
			}
		}
		t.Fatal("a client sending an option every 30 ms was never dropped")
	})

	t.Run("stall mid-option", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.write(optionBytes(optList, nil)[:7])
		c.expectClosed()
	})
}

// TestIdleTimeout: a connection with no request in flight is closed after
// IdleTimeout; one whose request takes longer than that is not.
func TestIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	img := testImage()
	v := &memVolume{data: img, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	cat := memCatalog{
		"disk": {Name: "disk", Device: VolumeDevice(&memVolume{data: img})},
		"slow": {Name: "slow", Device: VolumeDevice(v)},
	}
	_, addr := startServer(t, cat, Options{IdleTimeout: idle})

	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.goExport("disk", false)
	c.readBlock(1, 0, img)
	c.expectClosed()

	s := dial(t, addr)
	s.handshake(clientFlagFixedNewstyle)
	s.goExport("slow", false)
	s.request(0, cmdRead, 7, 0, 4096, nil)
	<-v.entered
	time.Sleep(5 * idle) // the request is in flight all along
	close(v.gate)
	k := s.next(map[uint64]int{7: 4096})
	if k.errno != 0 || !bytes.Equal(k.payload, img[:4096]) {
		t.Fatalf("slow read: errno %d", k.errno)
	}
	// Idle again from here: closed in turn.
	s.expectClosed()
}

// TestNoIdleTimeoutByDefault: without IdleTimeout a quiet client is
// still served after a pause.
func TestNoIdleTimeoutByDefault(t *testing.T) {
	img := testImage()
	_, addr := startServer(t, testCatalog(&memVolume{data: img}), Options{})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.goExport("disk", false)
	time.Sleep(300 * time.Millisecond)
	c.readBlock(1, 0, img)
}

// TestEvictionSparesUsedConnections: at MaxConns, a connection that never
// sent a request gives way before one that has used its export, however
// long that one has been idle.
func TestEvictionSparesUsedConnections(t *testing.T) {
	img := testImage()
	s, addr := startServer(t, testCatalog(&memVolume{data: img}), Options{MaxConns: 3})
	used := dial(t, addr)
	used.handshake(clientFlagFixedNewstyle)
	used.goExport("disk", false)
	used.readBlock(1, 0, img)
	waitQuiet(t, s)
	var unused []*testClient
	for range 2 {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.goExport("disk", false)
		unused = append(unused, c)
		waitQuiet(t, s) // so that unused[0] is the longest idle
	}
	n := dial(t, addr)
	n.handshake(clientFlagFixedNewstyle)
	n.goExport("disk", false)
	n.readBlock(1, 4096, img)
	unused[0].expectClosed()
	used.readBlock(2, 8192, img)
	unused[1].readBlock(1, 0, img)
}
