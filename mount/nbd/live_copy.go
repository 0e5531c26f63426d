package nbd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// HydrateOptions steer the background copy of a live restore.
type HydrateOptions struct {
	// Workers bounds the granules copied at once (default 4).
	Workers int
	// SaveEvery is how often the state is saved while copying
	// (default 5 s).
	SaveEvery time.Duration
}

// Hydrate copies every granule not yet in the target, in order, with up
// to o.Workers at a time, saving the state every o.SaveEvery and when it
// returns. Granules a client reads or writes meanwhile are hydrated by
// that request, ahead of the copy. It returns nil once the target is
// complete, or the first error (ctx.Err() when ctx ends).
func (d *LiveDevice) Hydrate(ctx context.Context, o HydrateOptions) (err error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.SaveEvery <= 0 {
		o.SaveEvery = 5 * time.Second
	}
	stop := make(chan struct{})
	var saver sync.WaitGroup
	var saveErr error
	saver.Go(func() {
		t := time.NewTicker(o.SaveEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := d.Flush(ctx); err != nil {
					saveErr = err
					return
				}
			}
		}
	})
	defer func() {
		close(stop)
		saver.Wait()
		err = errors.Join(err, saveErr, d.Flush(context.WithoutCancel(ctx)))
	}()

	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int64)
	g.Go(func() error {
		defer close(next)
		for i := range d.gf.granules() {
			if d.gf.has(i) {
				continue
			}
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range o.Workers {
		g.Go(func() error {
			for i := range next {
				if err := d.gf.ensure(gctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if !d.Complete() {
		return fmt.Errorf("live restore: %d of %d bytes hydrated after the copy", d.gf.presentBytes(), d.Size())
	}
	return nil
}

// LiveCatalog serves one live restore: it answers to the checkpoint ID, a
// prefix of it, and the empty (default) name.
func LiveCatalog(id, description string, d *LiveDevice) Catalog {
	return &liveCatalog{exp: &Export{Name: id, Description: description, Device: d}}
}

type liveCatalog struct{ exp *Export }

func (c *liveCatalog) Lookup(ctx context.Context, name string) (*Export, error) {
	if name == "" || strings.HasPrefix(c.exp.Name, name) {
		return c.exp, nil
	}
	return nil, fmt.Errorf("%q: %w", name, ErrUnknownExport)
}

func (c *liveCatalog) List(ctx context.Context) ([]ExportInfo, error) {
	return []ExportInfo{{Name: c.exp.Name, Description: c.exp.Description}}, nil
}

// Conns is the number of open client connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
