//go:build ceph

// Package cephtest gives unit tests a throwaway Ceph cluster's pools,
// namespaces and images (scripts/ceph-cluster.sh starts one; $CEPH_CONF
// names it), removed again when the test ends.
package cephtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"cairn/internal/testenv"
)

// cephHow says how to get a cluster.
const cephHow = "start one with scripts/ceph-cluster.sh start DIR and export CEPH_CONF (make test does both)"

// Cluster is a test's connection to the cluster of $CEPH_CONF.
type Cluster struct {
	t    testing.TB
	Conn *rados.Conn
	Conf string
}

// Connect connects to $CEPH_CONF's cluster. Without one the test skips,
// or fails under CAIRN_REQUIRE_ALL=1.
func Connect(t testing.TB) *Cluster {
	t.Helper()
	conf := testenv.Lookup(t, "CEPH_CONF", "a Ceph cluster", cephHow)
	conn, err := rados.NewConn()
	if err == nil {
		err = conn.ReadConfigFile(conf)
	}
	if err == nil {
		_ = conn.SetConfigOption("client_mount_timeout", "20")
		err = conn.Connect()
	}
	if err != nil {
		t.Fatalf("connect to the cluster of %s: %v", conf, err)
	}
	t.Cleanup(conn.Shutdown)
	return &Cluster{t: t, Conn: conn, Conf: conf}
}

// Pool is the pool tests put images in: $CAIRN_TEST_RBD_POOL or "rbd".
func Pool() string {
	if p := os.Getenv("CAIRN_TEST_RBD_POOL"); p != "" {
		return p
	}
	return "rbd"
}

// Unique returns prefix with a random suffix, for names no other test
// uses.
func Unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// IO opens pool (and namespace, if not "") for the rest of the test.
func (c *Cluster) IO(pool, namespace string) *rados.IOContext {
	c.t.Helper()
	io, err := c.Conn.OpenIOContext(pool)
	if err != nil {
		c.t.Fatalf("open pool %s: %v", pool, err)
	}
	io.SetNamespace(namespace)
	c.t.Cleanup(io.Destroy)
	return io
}

// CreatePool creates an RBD pool of 8 placement groups, deleted with its
// images when the test ends.
func (c *Cluster) CreatePool(name string) {
	c.t.Helper()
	c.MonCommand(map[string]any{"prefix": "osd pool create", "pool": name, "pg_num": 8})
	c.t.Cleanup(func() {
		c.MonCommand(map[string]any{"prefix": "osd pool rm", "pool": name, "pool2": name, "yes_i_really_really_mean_it": true})
	})
	io := c.IO(name, "")
	if err := rbd.PoolInit(io, true); err != nil {
		c.t.Fatalf("rbd pool init %s: %v", name, err)
	}
}

// CreateNamespace creates an RBD namespace in pool, removed (with its
// images) when the test ends.
func (c *Cluster) CreateNamespace(pool, ns string) {
	c.t.Helper()
	if err := rbd.NamespaceCreate(c.IO(pool, ""), ns); err != nil {
		c.t.Fatalf("create namespace %s/%s: %v", pool, ns, err)
	}
	c.t.Cleanup(func() {
		io := c.IO(pool, ns)
		names, _ := rbd.GetImageNames(io)
		for _, n := range names {
			removeImage(io, n)
		}
		if err := rbd.NamespaceRemove(c.IO(pool, ""), ns); err != nil {
			c.t.Logf("remove namespace %s/%s: %v", pool, ns, err)
		}
	})
}

// CreateImage creates an image and removes it, snapshots included, when
// the test ends (an image renamed meanwhile is the test's to remove).
func (c *Cluster) CreateImage(pool, ns, name string, size int64, features uint64) {
	c.t.Helper()
	io := c.IO(pool, ns)
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(rbd.ImageOptionFeatures, features); err != nil {
		c.t.Fatal(err)
	}
	if err := rbd.CreateImage(io, name, uint64(size), opts); err != nil {
		c.t.Fatalf("create image %s/%s: %v", pool, name, err)
	}
	c.Cleanup(pool, ns, name)
}

// Cleanup removes image name, snapshots included, when the test ends; a
// missing image is fine.
func (c *Cluster) Cleanup(pool, ns, name string) {
	io := c.IO(pool, ns)
	c.t.Cleanup(func() { removeImage(io, name) })
}

func removeImage(io *rados.IOContext, name string) {
	if img, err := rbd.OpenImage(io, name, rbd.NoSnapshot); err == nil {
		snaps, _ := img.GetSnapshotNames()
		for _, s := range snaps {
			_ = img.GetSnapshot(s.Name).Remove()
		}
		_ = img.Close()
	}
	_ = rbd.RemoveImage(io, name)
}

// Write writes data at off into the image head.
func (c *Cluster) Write(pool, ns, name string, off int64, data []byte) {
	c.t.Helper()
	img, err := rbd.OpenImage(c.IO(pool, ns), name, rbd.NoSnapshot)
	if err != nil {
		c.t.Fatalf("open %s: %v", name, err)
	}
	defer img.Close()
	if _, err := img.WriteAt(data, off); err != nil {
		c.t.Fatalf("write %s at %d: %v", name, off, err)
	}
	if err := img.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// Read returns the whole image, or its snapshot snap ("" for the head).
func (c *Cluster) Read(pool, ns, name, snap string) []byte {
	c.t.Helper()
	img, err := rbd.OpenImageReadOnly(c.IO(pool, ns), name, snap)
	if err != nil {
		c.t.Fatalf("open %s@%s: %v", name, snap, err)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, size)
	if _, err := img.ReadAt(buf, 0); err != nil {
		c.t.Fatalf("read %s@%s: %v", name, snap, err)
	}
	return buf
}

// Snaps lists an image's snapshots by name; a missing image has none.
func (c *Cluster) Snaps(pool, ns, name string) []string {
	c.t.Helper()
	img, err := rbd.OpenImageReadOnly(c.IO(pool, ns), name, rbd.NoSnapshot)
	if errors.Is(err, rbd.ErrNotFound) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer img.Close()
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, s := range snaps {
		out = append(out, s.Name)
	}
	return out
}

// Images lists the images of pool and namespace.
func (c *Cluster) Images(pool, ns string) []string {
	c.t.Helper()
	names, err := rbd.GetImageNames(c.IO(pool, ns))
	if err != nil {
		c.t.Fatal(err)
	}
	return names
}

// MonCommand sends one command to the monitors over the test's own
// connection. The ceph tool would first fetch the command descriptions,
// which a busy monitor sometimes refuses (EPERM), failing a test for
// nothing; pool creation is idempotent in the monitor.
func (c *Cluster) MonCommand(cmd map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	_, info, err := c.Conn.MonCommand(b)
	// With auth none a fresh client may send its first command before it
	// has the monmap, and the monitor refuses it for a wrong fsid (as
	// rados.Conn.PoolSize knows): try again.
	for try := 0; err != nil && strings.Contains(info, "wrong fsid") && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		_, info, err = c.Conn.MonCommand(b)
	}
	if err != nil {
		c.t.Fatalf("ceph %s: %v: %s", b, err, info)
	}
}
