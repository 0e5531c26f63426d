//go:build ceph

package rados

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"cairn/dedup/store"
)

// BackendName is the "backend" of a repository on RADOS in cairn.json.
const BackendName = "rados"

// Locator is what cairn.json says about a repository on RADOS, beside
// cairn's own fields.
type Locator struct {
	Backend string `json:"backend"` // BackendName
	// Pools holds one pool for every shard store, or exactly one per shard
	// index. Shard store i keeps its objects under the prefix "s<i>/".
	Pools     []string `json:"pools"`
	Namespace string   `json:"namespace,omitempty"`
	CephConf  string   `json:"ceph_conf,omitempty"`
	CephID    string   `json:"ceph_id,omitempty"`
	Keyring   string   `json:"keyring,omitempty"`
}

// NewLocator returns the locator of a repository in pools. conf and keyring
// are made absolute, so the locator works from any directory.
func NewLocator(pools []string, namespace string, o ConnOptions) (Locator, error) {
	if len(pools) == 0 {
		return Locator{}, errors.New("no RADOS pool given")
	}
	for _, p := range pools {
		if p == "" {
			return Locator{}, errors.New("empty RADOS pool name")
		}
	}
	l := Locator{Backend: BackendName, Pools: pools, Namespace: namespace, CephID: o.ID}
	var err error
	if o.Conf != "" {
		if l.CephConf, err = filepath.Abs(o.Conf); err != nil {
			return Locator{}, err
		}
	}
	if o.Keyring != "" {
		if l.Keyring, err = filepath.Abs(o.Keyring); err != nil {
			return Locator{}, err
		}
	}
	return l, nil
}

// Pool returns the pool of shard store i, or "" when there is none.
func (l Locator) Pool(i int) string {
	switch {
	case len(l.Pools) == 1 && i >= 0:
		return l.Pools[0]
	case i >= 0 && i < len(l.Pools):
		return l.Pools[i]
	}
	return ""
}

// Shards opens the shard stores of one repository on one shared Conn. It
// has the method set of dedup.Backend.
type Shards struct {
	conn *Conn
	loc  Locator
}

// OpenShards connects to the cluster a locator (cairn.json) names.
func OpenShards(ctx context.Context, locator []byte) (*Shards, error) {
	var l Locator
	if err := json.Unmarshal(locator, &l); err != nil {
		return nil, fmt.Errorf("rados locator: %w", err)
	}
	if l.Backend != BackendName || len(l.Pools) == 0 {
		return nil, fmt.Errorf("rados locator: backend %q with %d pools", l.Backend, len(l.Pools))
	}
	conn, err := Connect(ctx, ConnOptions{Conf: l.CephConf, ID: l.CephID, Keyring: l.Keyring})
	if err != nil {
		return nil, err
	}
	return &Shards{conn: conn, loc: l}, nil
}

// Store opens shard store i.
func (s *Shards) Store(ctx context.Context, i int) (store.Store, error) {
	pool := s.loc.Pool(i)
	if pool == "" {
		return nil, fmt.Errorf("rados: %d pools name no pool for shard %d", len(s.loc.Pools), i)
	}
	return s.conn.Open(ctx, Options{Pool: pool, Namespace: s.loc.Namespace, Prefix: fmt.Sprintf("s%d/", i)})
}

// PoolSize is Conn.PoolSize.
func (s *Shards) PoolSize(ctx context.Context, pool string) (int, error) {
	return s.conn.PoolSize(ctx, pool)
}

// Close releases the connection once every store opened from s is closed.
func (s *Shards) Close() error { return s.conn.Close() }
