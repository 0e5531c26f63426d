package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// conn is one client connection: option haggling, then transmission.
type conn struct {
	s  *Server
	nc net.Conn // the socket: deadlines and the final close act on it

	// rejecting marks a connection over MaxConns while every other one
	// is busy: it answers each option with an error and ends.
	rejecting bool

	mu           sync.Mutex
	tc           *tls.Conn // set after STARTTLS; I/O then goes through it
	transmitting bool
	draining     bool
	closed       bool
	evicted      bool // drained to make room for a new client
	// inflight counts requests being served; lastActive is when the last
	// request arrived or ended (or the connection was accepted), and
	// activity orders those moments across connections without ties.
	inflight   int
	lastActive time.Time
	activity   uint64
	served     bool // a request has arrived
}

// stream is what the connection reads and writes: the socket, or the TLS
// session over it.
func (c *conn) stream() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tc != nil {
		return c.tc
	}
	return c.nc
}

// serve runs the connection until the client leaves, breaks the protocol,
// or the server stops it. Every goroutine it starts has ended when it
// returns.
func (c *conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	defer c.close()

	// The whole negotiation, TLS included, must end within the handshake
	// timeout: a client cannot hold a slot by sending one byte at a time.
	c.nc.SetDeadline(time.Now().Add(c.s.o.HandshakeTimeout))
	sess := &session{c: c}
	exp, err := sess.negotiate(ctx)
	if err == nil && exp != nil && c.startTransmission() {
		t := newTransmission(c, sess, exp)
		err = t.run(ctx)
	}
	if err != nil && !quietError(err) {
		c.s.o.Logf("nbd: %s: %v", c.nc.RemoteAddr(), err)
	}
	c.mu.Lock()
	evicted := c.evicted
	c.mu.Unlock()
	if evicted {
		c.s.o.Logf("nbd: %s: closed while idle to make room for a new client (%d connections)", c.nc.RemoteAddr(), c.s.o.MaxConns)
	}
}

// quietError reports the ordinary ways a connection ends: the client hung
// up, or the server closed or drained it.
func quietError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, errAborted) || errors.Is(err, errBusy)
}

// startTransmission leaves option haggling: the handshake deadline is
// lifted. It reports false when the server began draining meanwhile.
func (c *conn) startTransmission() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining || c.closed {
		return false
	}
	c.transmitting = true
	c.nc.SetDeadline(time.Time{})
	c.touchLocked()
	return true
}

// beginOption reports false when the connection should end instead of
// reading the next option.
func (c *conn) beginOption() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.draining && !c.closed
}

// touch records activity now.
func (c *conn) touch() {
	c.mu.Lock()
	c.touchLocked()
	c.mu.Unlock()
}

// touchLocked records activity now.
func (c *conn) touchLocked() {
	c.lastActive = time.Now()
	c.activity = c.s.activity.Add(1)
}

// armIdle sets the read deadline for the next request: IdleTimeout after
// the last activity, or after now while requests are in flight (a long
// read is not idleness; the deadline is then only a point to look again).
func (c *conn) armIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	idle := c.s.o.IdleTimeout
	if idle <= 0 || c.draining || c.closed {
		return // a drain's deadline must stay
	}
	base := c.lastActive
	if c.inflight > 0 {
		base = time.Now()
	}
	c.nc.SetReadDeadline(base.Add(idle))
}

// idleExpired reports whether the connection has had no request in
// flight for IdleTimeout.
func (c *conn) idleExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.o.IdleTimeout > 0 && c.inflight == 0 && time.Since(c.lastActive) >= c.s.o.IdleTimeout
}

// requestBegin and requestEnd bracket each request's service.
func (c *conn) requestBegin() {
	c.mu.Lock()
	c.inflight++
	c.served = true
	c.touchLocked()
	c.mu.Unlock()
}

func (c *conn) requestEnd() {
	c.mu.Lock()
	c.inflight--
	c.touchLocked()
	c.mu.Unlock()
}

// evictRank orders the connections that may be drained for a new client
// (ok: no request in flight, not already ending); the lowest goes first.
// Connections still negotiating go before those in transmission that
// never sent a request, and those before the rest, each group longest
// idle first: a flood of connections that never read anything gives way
// to itself before it cuts off a client that has used its export, such as
// a VM's disk whose guest reads from its cache for a while.
func (c *conn) evictRank() (rank [2]uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	class := uint64(2)
	switch {
	case !c.transmitting:
		class = 0
	case !c.served:
		class = 1
	}
	return [2]uint64{class, c.activity}, c.inflight == 0 && !c.draining && !c.closed
}

// drain asks the connection to end gracefully: one still haggling is
// closed; one in transmission stops reading requests, answers those in
// flight and closes.
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	transmitting := c.transmitting
	if transmitting {
		c.nc.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
	if !transmitting {
		c.close()
	}
}

// evict drains the connection to make room for a new client; the server
// holds s.mu.
func (c *conn) evict() {
	c.mu.Lock()
	c.evicted = true
	c.mu.Unlock()
	c.drain()
}

func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// close ends the connection, shutting TLS down first when it runs. It is
// idempotent.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	tc := c.tc
	c.mu.Unlock()
	if tc != nil {
		// close_notify must not block on a client that stopped reading.
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		tc.Close()
	}
	c.nc.Close()
}

// upgradeTLS switches the connection to TLS after NBD_OPT_STARTTLS was
// acknowledged. br must hold no unread bytes: a client may send nothing
// between the option and the TLS handshake.
func (c *conn) upgradeTLS(ctx context.Context, br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return errorf(ErrProtocol, "data after NBD_OPT_STARTTLS before the TLS handshake")
	}
	tc := tls.Server(c.nc, c.s.o.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		return errorf(err, "TLS handshake")
	}
	c.mu.Lock()
	c.tc = tc
	c.mu.Unlock()
	br.Reset(tc)
	return nil
}
