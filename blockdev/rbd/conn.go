//go:build ceph

package rbd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ceph/go-ceph/rados"
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

// Connect reads the configuration and connects. librados takes no context
// and waits up to client_mount_timeout for the monitors; when ctx ends
// first, Connect returns ctx's error and the abandoned attempt shuts itself
// down when librados gives up.
func Connect(ctx context.Context, o ConnOptions) (*Cluster, error) {
	id := strings.TrimPrefix(o.ID, "client.")
	var conn *rados.Conn
	var err error
	if id != "" {
		conn, err = rados.NewConnWithUser(id)
	} else {
		conn, err = rados.NewConn()
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: create connection: %w", err)
	}
	// A CLI prints its own one-line errors; librados's log lines on
	// stderr would interleave with them. The configuration may turn them
	// back on.
	for _, opt := range []string{"log_to_stderr", "err_to_stderr"} {
		_ = conn.SetConfigOption(opt, "false")
	}
	var confErr error
	if o.Conf != "" {
		if err := conn.ReadConfigFile(o.Conf); err != nil {
			conn.Shutdown()
			return nil, fmt.Errorf("ceph: read config %s: %w", o.Conf, err)
		}
	} else {
		// Searches $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config and
		// ./ceph.conf. None at all is fine when $CEPH_ARGS names the
		// monitors; otherwise connecting fails and says so below.
		confErr = conn.ReadDefaultConfigFile()
	}
	if o.Keyring != "" {
		if err := conn.SetConfigOption("keyring", o.Keyring); err != nil {
			conn.Shutdown()
			return nil, fmt.Errorf("ceph: keyring %s: %w", o.Keyring, err)
		}
	}
	if err := conn.ParseDefaultConfigEnv(); err != nil {
		conn.Shutdown()
		return nil, fmt.Errorf("ceph: parse CEPH_ARGS: %w", err)
	}

	// Unbuffered: the hand-over succeeds only while Connect's caller still
	// waits, so exactly one side owns (and shuts down) the connection.
	done := make(chan error)
	go func() {
		err := conn.Connect()
		select {
		case done <- err:
		case <-ctx.Done():
			conn.Shutdown()
		}
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Shutdown()
		if confErr != nil {
			return nil, fmt.Errorf("ceph: connect: %w (no ceph.conf found: pass --ceph-conf or set CEPH_CONF: %v)", err, confErr)
		}
		return nil, fmt.Errorf("ceph: connect: %w", err)
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
