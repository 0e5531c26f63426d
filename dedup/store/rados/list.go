//go:build ceph

package rados

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ceph/go-ceph/rados"
	"golang.org/x/sync/errgroup"
)

const (
	// listBatch is how many names List collects before it stats them.
	listBatch = 256
	// listStats bounds the Stat calls List has in flight.
	listStats = 16
)

// List calls fn for every object under prefix. RADOS lists a namespace in
// hash order, not by name, so this walks the whole namespace and filters;
// sizes come from one Stat per listed object, in batches. An object deleted
// between the walk and its Stat is skipped. fn runs in the caller's
// goroutine and may use the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it, err := s.io.Iter()
	if err != nil {
		return fmt.Errorf("%s: list: %w", s, err)
	}
	defer it.Close()
	full := s.opts.Prefix + prefix
	batch := make([]string, 0, listBatch)
	for it.Next() {
		oid := it.Value()
		if !strings.HasPrefix(oid, full) {
			continue
		}
		batch = append(batch, oid)
		if len(batch) == listBatch {
			if err := s.listBatch(ctx, batch, fn); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("%s: list: %w", s, err)
	}
	return s.listBatch(ctx, batch, fn)
}

// listBatch stats oids, a few at a time, then hands them to fn in order.
func (s *Store) listBatch(ctx context.Context, oids []string, fn func(string, int64) error) error {
	if len(oids) == 0 {
		return nil
	}
	sizes := make([]int64, len(oids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listStats)
	for i, oid := range oids {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			st, err := s.io.Stat(oid)
			switch {
			case errors.Is(err, rados.ErrNotFound):
				sizes[i] = -1
			case err != nil:
				return fmt.Errorf("%s: list: stat %s: %w", s, oid, err)
			default:
				sizes[i] = int64(st.Size)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, oid := range oids {
		if sizes[i] < 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(strings.TrimPrefix(oid, s.opts.Prefix), sizes[i]); err != nil {
			return err
		}
	}
	return nil
}
