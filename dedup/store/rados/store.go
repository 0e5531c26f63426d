//go:build ceph

package rados

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ceph/go-ceph/rados"

	"cairn/dedup/store"
)

// Options name where a Store keeps its objects.
type Options struct {
	Pool      string
	Namespace string // RADOS namespace; "" is the default namespace
	// Prefix is prepended to every object name, e.g. "s2/", so that the
	// shard stores of one repository can share a pool and namespace.
	Prefix string
}

// Store is a store.Store over a RADOS pool. It is safe for concurrent use.
type Store struct {
	conn *Conn
	io   *rados.IOContext
	opts Options

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens a store on c. The pool must exist; the store holds a reference
// to c until Close.
func (c *Conn) Open(ctx context.Context, o Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.Pool == "" {
		return nil, errors.New("rados store: no pool given")
	}
	io, err := c.openIOContext(o.Pool, o.Namespace)
	if err != nil {
		return nil, fmt.Errorf("rados store: %w", err)
	}
	c.acquire()
	return &Store{conn: c, io: io, opts: o}, nil
}

// String names the store, e.g. "rados:pool/ns/s2/".
func (s *Store) String() string {
	where := s.opts.Pool
	if s.opts.Namespace != "" {
		where += "/" + s.opts.Namespace
	}
	if s.opts.Prefix != "" {
		where += "/" + s.opts.Prefix
	}
	return "rados:" + where
}

// Close releases the I/O context and the store's reference to its Conn.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.io.Destroy()
		s.conn.release()
	})
	return nil
}

// oid checks name and returns its RADOS object name.
func (s *Store) oid(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := store.CheckName(name); err != nil {
		return "", fmt.Errorf("%s: %q: %w", s, name, err)
	}
	return s.opts.Prefix + name, nil
}

// wrap maps a librados error on name to the store's errors.
func (s *Store) wrap(op, name string, err error) error {
	if errors.Is(err, rados.ErrNotFound) {
		return fmt.Errorf("%s: %s %s: %w", s, op, name, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
}

// Put writes data as the whole object in one atomic write_full.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	oid, err := s.oid(ctx, name)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		err = writeFullEmpty(s.io, oid)
	} else {
		err = s.io.WriteFull(oid, data)
	}
	if err != nil {
		return s.wrap("put", name, err)
	}
	return ctx.Err()
}

// Get reads the whole object in one read operation: a Stat gives the size to
// expect, and a read that fills its buffer is retried larger, since the
// object may have been replaced by a longer one in between.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	oid, err := s.oid(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := s.io.Stat(oid)
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	buf := make([]byte, st.Size+4096)
	for {
		n, err := s.io.Read(oid, buf, 0)
		if err != nil {
			return nil, s.wrap("get", name, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if n < len(buf) {
			return buf[:n:n], nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ReadAt reads len(p) bytes at off in one ranged read.
func (s *Store) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	oid, err := s.oid(ctx, name)
	if err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("%s: read %s at negative offset %d", s, name, off)
	}
	if len(p) == 0 {
		// librados skips empty reads; the object must still exist and
		// reach off.
		size, err := s.Stat(ctx, name)
		if err == nil && off > size {
			err = fmt.Errorf("%s: read %s at %d past its end at %d: %w", s, name, off, size, io.ErrUnexpectedEOF)
		}
		return err
	}
	n, err := s.io.Read(oid, p, uint64(off))
	if err != nil {
		return s.wrap("read", name, err)
	}
	if n < len(p) {
		return fmt.Errorf("%s: read %s: %d of %d bytes at %d: %w", s, name, n, len(p), off, io.ErrUnexpectedEOF)
	}
	return ctx.Err()
}

// Stat returns the object's size.
func (s *Store) Stat(ctx context.Context, name string) (int64, error) {
	oid, err := s.oid(ctx, name)
	if err != nil {
		return 0, err
	}
	st, err := s.io.Stat(oid)
	if err != nil {
		return 0, s.wrap("stat", name, err)
	}
	return int64(st.Size), ctx.Err()
}

// Delete removes the object; a missing object is no error.
func (s *Store) Delete(ctx context.Context, name string) error {
	oid, err := s.oid(ctx, name)
	if err != nil {
		return err
	}
	if err := s.io.Delete(oid); err != nil && !errors.Is(err, rados.ErrNotFound) {
		return s.wrap("delete", name, err)
	}
	return ctx.Err()
}
