//go:build ceph

package rados_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"cairn/dedup/store"
	"cairn/dedup/store/rados"
	"cairn/dedup/store/storetest"
	"cairn/internal/cephtest"
	"cairn/internal/testenv"
)

// testPool is created by the test when missing (on the throwaway cluster
// of scripts/ceph-cluster.sh, pools have size 1).
const testPool = "cairn-storetest"

// connect returns a connection to the cluster named by $CEPH_CONF, or skips
// the test (fails it under CAIRN_REQUIRE_ALL=1).
func connect(t *testing.T) *rados.Conn {
	t.Helper()
	conf := testenv.Lookup(t, "CEPH_CONF", "a Ceph cluster", "run make ceph-up and export CEPH_CONF (make test does both)")
	c, err := rados.Connect(context.Background(), rados.ConnOptions{Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ensurePool(t *testing.T, pool string) {
	t.Helper()
	cephtest.Connect(t).MonCommand(map[string]any{"prefix": "osd pool create", "pool": pool, "pg_num": 8})
}

func randomName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestStore(t *testing.T) {
	c := connect(t)
	ensurePool(t, testPool)
	for _, tt := range []struct{ name, prefix string }{
		{"NoPrefix", ""},
		{"Prefix", "s3/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				// A fresh namespace per subtest gives each an empty store;
				// a sibling prefix in the same namespace must stay invisible.
				ns := randomName()
				s, err := c.Open(context.Background(), rados.Options{Pool: testPool, Namespace: ns, Prefix: tt.prefix})
				if err != nil {
					t.Fatal(err)
				}
				if tt.prefix != "" {
					other, err := c.Open(context.Background(), rados.Options{Pool: testPool, Namespace: ns, Prefix: "s4/"})
					if err != nil {
						t.Fatal(err)
					}
					if err := other.Put(context.Background(), "packs/ab/1", []byte("sibling")); err != nil {
						t.Fatal(err)
					}
					other.Close()
				}
				return s
			})
		})
	}
}

func TestPoolSize(t *testing.T) {
	c := connect(t)
	ensurePool(t, testPool)
	n, err := c.PoolSize(context.Background(), testPool)
	if err != nil || n != 1 {
		t.Fatalf("PoolSize(%s) = %d, %v; want 1 on the throwaway cluster", testPool, n, err)
	}
	if _, err := c.PoolSize(context.Background(), "cairn-no-such-pool"); err == nil {
		t.Fatal("PoolSize of a missing pool: no error")
	}
}

func TestMissingPool(t *testing.T) {
	c := connect(t)
	if _, err := c.Open(context.Background(), rados.Options{Pool: "cairn-no-such-pool"}); err == nil {
		t.Fatal("Open of a missing pool: no error")
	}
}
