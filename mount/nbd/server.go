package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options tune a Server. The zero value serves without TLS with the
// defaults below.
type Options struct {
	// TLS enables NBD_OPT_STARTTLS; TLSRequired refuses every other
	// option (and NBD_OPT_EXPORT_NAME) until TLS is up.
	TLS         *tls.Config
	TLSRequired bool
	// MaxRequest is the largest READ or WRITE payload (default 32 MiB).
	MaxRequest int
	// Workers bounds the requests in flight per connection (default 16).
	Workers int
	// MaxConns bounds open connections (default 256). A client beyond it
	// takes the place of an idle one (no request in flight), which is
	// drained and closed: one still negotiating first, then one that
	// never sent a request, then the one idle longest. Only when all are
	// busy is the new client refused, with NBD_REP_ERR_POLICY to its
	// options.
	MaxConns int
	// HandshakeTimeout bounds the whole negotiation, from accept to the
	// start of transmission (default 10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection in transmission that has had no
	// request in flight for that long (default 0: never, since a VM's
	// disk may rightly sit unused for hours).
	IdleTimeout time.Duration
	// Logf reports connection failures (nil: silent).
	Logf func(format string, args ...any)
}

const (
	defaultMaxRequest = 32 << 20
	defaultWorkers    = 16
	defaultMaxConns   = 256
	defaultHandshake  = 10 * time.Second
	// maxRejecting bounds the connections being refused at once: past
	// it, a client over MaxConns is closed without a word.
	maxRejecting = 16
)

// Server serves a Catalog's exports over the NBD protocol (fixed newstyle
// negotiation, structured replies, base:allocation, optional TLS). One
// Server may Serve several listeners.
type Server struct {
	cat Catalog
	o   Options

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	// evicted and rejecting count the conns being drained for a new
	// client and those being refused; neither counts against MaxConns.
	evicted   int
	rejecting int
	closing   bool
	wg        sync.WaitGroup // one per connection goroutine
	// activity stamps connection activity in order (see conn.activity).
	activity atomic.Uint64
}

// NewServer returns a server of cat's exports.
func NewServer(cat Catalog, o Options) *Server {
	if o.MaxRequest <= 0 {
		o.MaxRequest = defaultMaxRequest
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	if o.MaxConns <= 0 {
		o.MaxConns = defaultMaxConns
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshake
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Server{cat: cat, o: o, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// Serve accepts connections on l until l is closed, Shutdown is called
// (ErrServerClosed) or ctx ends (ctx.Err(); every connection is then cut
// at once). It closes l when it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			switch {
			case s.isClosing():
				return ErrServerClosed
			case ctx.Err() != nil:
				return ctx.Err()
			case temporary(err):
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.o.Logf("nbd: accept: %v; retrying in %v", err, delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("nbd: accept: %w", err)
		}
		delay = 0
		c := s.track(nc)
		if c == nil {
			nc.Close()
			continue
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			c.serve(ctx)
		}()
	}
}

// temporary reports accept errors worth retrying (out of descriptors, an
// aborted connection).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track registers a new connection, or returns nil when the server is
// closing, or full of busy connections and of ones being refused. At
// MaxConns it drains the connection idle longest to make room, or, when
// every one is busy, admits the new one only to refuse it politely. The
// caller owns one s.wg count for a non-nil result.
func (s *Server) track(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	c := &conn{s: s, nc: nc}
	if len(s.conns)-s.evicted-s.rejecting >= s.o.MaxConns {
		if v := s.idlestLocked(); v != nil {
			v.evict()
			s.evicted++
		} else if s.rejecting < maxRejecting {
			c.rejecting = true
			s.rejecting++
		} else {
			return nil
		}
	}
	c.mu.Lock()
	c.touchLocked()
	c.mu.Unlock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// idlestLocked returns the connection to drain for a new client (see
// conn.evictRank), or nil when every one is busy.
func (s *Server) idlestLocked() *conn {
	var best *conn
	var bestRank [2]uint64
	for c := range s.conns {
		if c.rejecting {
			continue
		}
		r, ok := c.evictRank()
		if ok && (best == nil || r[0] < bestRank[0] || r[0] == bestRank[0] && r[1] < bestRank[1]) {
			best, bestRank = c, r
		}
	}
	return best
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if c.rejecting {
		s.rejecting--
	}
	c.mu.Lock()
	if c.evicted {
		s.evicted--
	}
	c.mu.Unlock()
}

// serveConn runs one connection to its end, for tests and fuzzing.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := s.track(nc)
	if c == nil {
		nc.Close()
		return
	}
	defer s.wg.Done()
	defer s.untrack(c)
	c.serve(ctx)
}

// Shutdown stops accepting, drops connections still negotiating, and lets
// the others finish the requests they have in flight before closing them.
// When ctx ends first, every connection is cut at once and ctx.Err() is
// returned. Serve returns ErrServerClosed after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
