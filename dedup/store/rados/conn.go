//go:build ceph

package rados

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ceph/go-ceph/rados"
)

// ErrPoolNotFound is returned (wrapped) when a pool does not exist.
var ErrPoolNotFound = errors.New("RADOS pool not found")

// ConnOptions say how to reach a cluster. Empty fields fall back to
// librados's defaults: $CEPH_CONF or /etc/ceph/ceph.conf, client.admin and
// the keyring the configuration names. $CEPH_ARGS is applied last.
type ConnOptions struct {
	Conf    string // path of a ceph.conf
	ID      string // client ID: "cairn" or "client.cairn"
	Keyring string // path of a keyring file
}

// Conn is a connection to a Ceph cluster, shared by the stores opened on it.
// It is safe for concurrent use. Each Store holds a reference; the cluster
// handle is shut down when Close has been called on the Conn and on every
// Store opened from it.
type Conn struct {
	conn *rados.Conn

	mu   sync.Mutex
	refs int // the Conn itself plus open stores
}

// Connect reads the configuration and connects. librados waits up to
// client_mount_timeout for the monitors and takes no context: when ctx ends
// first, Connect returns ctx's error and the abandoned attempt shuts itself
// down when librados gives up.
func Connect(ctx context.Context, o ConnOptions) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
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
	// The CLI prints one-line errors; librados's log lines on stderr would
	// interleave with them. The configuration may turn them back on.
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
		// $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf;
		// none is fine when $CEPH_ARGS names the monitors.
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
	// Unbuffered: the hand-over succeeds only while the caller still
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
	return &Conn{conn: conn, refs: 1}, nil
}

// Close releases the caller's reference; the cluster handle is shut down
// once every Store opened from c is closed too.
func (c *Conn) Close() error {
	c.release()
	return nil
}

func (c *Conn) acquire() {
	c.mu.Lock()
	c.refs++
	c.mu.Unlock()
}

func (c *Conn) release() {
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	c.mu.Unlock()
	if last {
		c.conn.Shutdown()
	}
}

// openIOContext opens pool (and selects namespace).
func (c *Conn) openIOContext(pool, namespace string) (*rados.IOContext, error) {
	io, err := c.conn.OpenIOContext(pool)
	if errors.Is(err, rados.ErrNotFound) {
		return nil, fmt.Errorf("pool %s: %w", pool, ErrPoolNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open pool %s: %w", pool, err)
	}
	io.SetNamespace(namespace)
	return io, nil
}

// PoolSize returns how many copies (a replicated pool) or shards (an
// erasure-coded pool) RADOS keeps of every object in pool: 1 means RADOS
// adds no redundancy of its own.
func (c *Conn) PoolSize(ctx context.Context, pool string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cmd, _ := json.Marshal(map[string]string{"prefix": "osd pool get", "pool": pool, "var": "size", "format": "json"})
	out, status, err := c.conn.MonCommand(cmd)
	// With auth none a fresh client may send its first command before it
	// has the monmap, and the mon refuses it for a wrong fsid: try again.
	for try := 0; err != nil && strings.Contains(status, "wrong fsid") && try < 50; try++ {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		out, status, err = c.conn.MonCommand(cmd)
	}
	if err != nil {
		if _, perr := c.conn.GetPoolByName(pool); errors.Is(perr, rados.ErrNotFound) {
			return 0, fmt.Errorf("pool %s: %w", pool, ErrPoolNotFound)
		}
		return 0, fmt.Errorf("ceph osd pool get %s size: %w (%s)", pool, err, status)
	}
	var v struct {
		Size int `json:"size"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Size <= 0 {
		return 0, fmt.Errorf("ceph osd pool get %s size: unexpected reply %q", pool, out)
	}
	return v.Size, ctx.Err()
}
