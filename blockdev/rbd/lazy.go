//go:build ceph

package rbd

import "context"

// Lazy is a cluster connection made on first use, and again on the next
// use after a failed attempt: a daemon's plugins start without waiting
// for Ceph, and a cluster that was down at start is used once it is up.
// It is safe for concurrent use.
type Lazy struct {
	o   ConnOptions
	sem chan struct{} // guards cl; a connect may take long
	cl  *Cluster
}

// NewLazy returns a Lazy connection to the cluster o names.
func NewLazy(o ConnOptions) *Lazy { return &Lazy{o: o, sem: make(chan struct{}, 1)} }

// Cluster returns the connection, connecting if needed.
func (l *Lazy) Cluster(ctx context.Context) (*Cluster, error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.sem }()
	if l.cl == nil {
		cl, err := Connect(ctx, l.o)
		if err != nil {
			return nil, err
		}
		l.cl = cl
	}
	return l.cl, nil
}

// Close disconnects; call it when nothing uses the connection any more.
func (l *Lazy) Close() {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	if l.cl != nil {
		l.cl.Close()
		l.cl = nil
	}
}
