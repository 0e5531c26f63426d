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

	"cairn/internal/cephconn"
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

// Connect connects to the cluster (see cephconn.Dial for how a cancelled
// ctx is handled).
func Connect(ctx context.Context, o ConnOptions) (*Conn, error) {
	conn, err := cephconn.Dial(ctx, cephconn.Options(o))
	if err != nil {
		return nil, err
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
