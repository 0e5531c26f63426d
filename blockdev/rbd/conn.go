//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rados"

	"cairn/internal/cephconn"
)

// ConnOptions say how to reach the cluster. Empty fields fall back to
// librados's defaults: $CEPH_CONF or /etc/ceph/ceph.conf, client.admin, the
// keyring named in the configuration. $CEPH_ARGS is applied last.
type ConnOptions struct {
	Conf    string // path of a ceph.conf
	ID      string // client ID, "cinder" or "client.cinder"
	Keyring string // path of a keyring file
}

// Cluster is one connection to a Ceph cluster. It is safe for concurrent
// use.
type Cluster struct {
	conn *rados.Conn
}

// Connect connects to the cluster (see cephconn.Dial for how a cancelled
// ctx is handled).
func Connect(ctx context.Context, o ConnOptions) (*Cluster, error) {
	conn, err := cephconn.Dial(ctx, cephconn.Options(o))
	if err != nil {
		return nil, err
	}
	return &Cluster{conn: conn}, nil
}

// Close disconnects.
func (c *Cluster) Close() { c.conn.Shutdown() }

// ioctx opens an I/O context on the spec's pool and namespace.
func (c *Cluster) ioctx(s Spec) (*rados.IOContext, error) {
	io, err := c.conn.OpenIOContext(s.Pool)
	if errors.Is(err, rados.ErrNotFound) {
		return nil, fmt.Errorf("ceph: pool %s: %w", s.Pool, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: open pool %s: %w", s.Pool, err)
	}
	if s.Namespace != "" {
		io.SetNamespace(s.Namespace)
	}
	return io, nil
}
