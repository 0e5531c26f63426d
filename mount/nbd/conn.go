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

	mu           sync.Mutex
	tc           *tls.Conn // set after STARTTLS; I/O then goes through it
	transmitting bool
	draining     bool
	closed       bool
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

	sess := &session{c: c}
	exp, err := sess.negotiate(ctx)
	if err == nil && exp != nil && c.startTransmission() {
		t := newTransmission(c, sess, exp)
		err = t.run(ctx)
	}
	if err != nil && !quietError(err) {
		c.s.o.Logf("nbd: %s: %v", c.nc.RemoteAddr(), err)
	}
}

// quietError reports the ordinary ways a connection ends: the client hung
// up, or the server closed or drained it.
func quietError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, errAborted)
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
	return true
}

// beginOption arms the handshake timeout for the next option. It reports
// false when the connection should end instead.
func (c *conn) beginOption() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining || c.closed {
		return false
	}
	c.nc.SetDeadline(time.Now().Add(c.s.o.HandshakeTimeout))
	return true
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
