//go:build ceph

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"cairn/internal/testenv"
)

// cephT is a test's handle on the Ceph cluster named by $CEPH_CONF: go-ceph
// for precise writes and snapshot polling, the rbd CLI for what an operator
// would run.
type cephT struct {
	t    *testing.T
	conn *rados.Conn
	io   *rados.IOContext
	pool string
}

// requireCeph connects to $CEPH_CONF's cluster. Without one the test
// skips, or fails under CAIRN_REQUIRE_ALL=1 (CI).
func requireCeph(t *testing.T) *cephT {
	t.Helper()
	conf := testenv.Lookup(t, "CEPH_CONF", "a Ceph cluster", "start one with scripts/ceph-cluster.sh start DIR and export CEPH_CONF (make test does both)")
	requireTool(t, "rbd")
	checkCephBinary(t)
	conn, err := rados.NewConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.ReadConfigFile(conf); err != nil {
		t.Fatalf("read %s: %v", conf, err)
	}
	_ = conn.SetConfigOption("client_mount_timeout", "20")
	if err := conn.Connect(); err != nil {
		t.Fatalf("connect to the cluster of %s: %v", conf, err)
	}
	t.Cleanup(conn.Shutdown)
	pool := os.Getenv("CAIRN_TEST_RBD_POOL")
	if pool == "" {
		pool = "rbd"
	}
	io, err := conn.OpenIOContext(pool)
	if err != nil {
		t.Fatalf("open pool %s: %v", pool, err)
	}
	t.Cleanup(io.Destroy)
	return &cephT{t: t, conn: conn, io: io, pool: pool}
}

var (
	cephBinaryOnce sync.Once
	cephBinaryErr  string
)

// checkCephBinary fails the test when the cairn under test was built
// without the ceph tag: every RBD test would fail, each less clearly.
func checkCephBinary(t *testing.T) {
	t.Helper()
	cephBinaryOnce.Do(func() {
		out, _ := exec.Command(cairnBin, "backup", "--repo", t.TempDir(), "--source", "rbd:no-such-pool/x").CombinedOutput()
		if strings.Contains(string(out), "built without Ceph support") {
			cephBinaryErr = "the cairn binary under test was built without the ceph tag (TestMain must build it with -tags 'ceph pacific')"
		}
	})
	if cephBinaryErr != "" {
		t.Fatal(cephBinaryErr)
	}
}

// rbdCLI runs the rbd tool and returns its stdout.
func (c *cephT) rbdCLI(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rbd", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c.t.Fatalf("rbd %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		c.t.Fatalf("rbd %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// newImage creates an image of size bytes with the given features and
// removes it, snapshots included, when the test ends. It returns the
// image name and its spec "rbd:POOL/NAME".
func (c *cephT) newImage(size int64, features string) (name, spec string) {
	c.t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "e2e-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(c.t.Name())) + "-" + hex.EncodeToString(b[:])
	c.rbdCLI("create", "--size", fmt.Sprintf("%dM", size/mib), "--image-feature", features, c.pool+"/"+name)
	c.t.Cleanup(func() { c.removeImage(name) })
	return name, "rbd:" + c.pool + "/" + name
}

// removeImage removes an image and all its snapshots; a missing one is fine.
func (c *cephT) removeImage(name string) {
	img, err := rbd.OpenImage(c.io, name, rbd.NoSnapshot)
	if err != nil {
		return
	}
	snaps, _ := img.GetSnapshotNames()
	for _, s := range snaps {
		_ = img.GetSnapshot(s.Name).Remove()
	}
	_ = img.Close()
	if err := rbd.RemoveImage(c.io, name); err != nil && !errors.Is(err, rbd.ErrNotFound) {
		c.t.Logf("remove image %s: %v", name, err)
	}
}

// write writes data at off into the image head.
func (c *cephT) write(name string, off int64, data []byte) {
	c.t.Helper()
	img, err := rbd.OpenImage(c.io, name, rbd.NoSnapshot)
	if err != nil {
		c.t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.WriteAt(data, off); err != nil {
		c.t.Fatalf("write %s at %d: %v", name, off, err)
	}
	if err := img.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// discard deallocates [off, off+n) of the image head.
func (c *cephT) discard(name string, off, n int64) {
	c.t.Helper()
	img, err := rbd.OpenImage(c.io, name, rbd.NoSnapshot)
	if err != nil {
		c.t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.Discard(uint64(off), uint64(n)); err != nil {
		c.t.Fatalf("discard %s at %d+%d: %v", name, off, n, err)
	}
}

// snaps lists the snapshot names of an image, oldest first.
func (c *cephT) snaps(name string) []string {
	c.t.Helper()
	var list []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(c.rbdCLI("snap", "ls", "--format", "json", c.pool+"/"+name)), &list); err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	return names
}

// cairnSnaps lists the snapshots whose names start with "cairn-".
func (c *cephT) cairnSnaps(name string) []string {
	var out []string
	for _, s := range c.snaps(name) {
		if strings.HasPrefix(s, "cairn-") {
			out = append(out, s)
		}
	}
	return out
}

// exportHash is the SHA-256 of `rbd export POOL/IMAGE[@SNAP] -`.
func (c *cephT) exportHash(nameAtSnap string) string {
	c.t.Helper()
	cmd := exec.Command("rbd", "export", "--no-progress", c.pool+"/"+nameAtSnap, "-")
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, out); err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		c.t.Fatalf("rbd export %s: %v", nameAtSnap, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// usedBytes is `rbd du`'s used_size of an image.
func (c *cephT) usedBytes(name string) int64 {
	c.t.Helper()
	var du struct {
		Images []struct {
			Name     string `json:"name"`
			Snapshot string `json:"snapshot"`
			Used     int64  `json:"used_size"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(c.rbdCLI("du", "--format", "json", c.pool+"/"+name)), &du); err != nil {
		c.t.Fatal(err)
	}
	for _, im := range du.Images {
		if im.Name == name && im.Snapshot == "" {
			return im.Used
		}
	}
	c.t.Fatalf("rbd du lists no image %s", name)
	return 0
}

// rbdCheckpoint is a checkpoint with its tags, as backup --json prints it.
type rbdCheckpoint struct {
	checkpoint
	Tags map[string]string `json:"tags"`
}

// backupRBD runs backup --json with extra environment and arguments and
// returns the checkpoint, failing the test unless it succeeds.
func (e *env) backupRBD(envv []string, spec string, extra ...string) (rbdCheckpoint, result) {
	e.t.Helper()
	r := e.runEnv(envv, append([]string{"backup", "--source", spec, "--json"}, extra...)...)
	if r.code != 0 {
		e.t.Fatalf("backup failed:\n%s", r)
	}
	var cp rbdCheckpoint
	if err := json.Unmarshal([]byte(r.stdout), &cp); err != nil || cp.ID == "" {
		e.t.Fatalf("backup --json printed no checkpoint: %v\n%s", err, r)
	}
	return cp, r
}

// runEnv is run with extra environment variables (run drops CAIRN_*).
func (e *env) runEnv(envv []string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	cmd.Env = append(cmd.Env, envv...)
	return execute(e.t, ctx, cmd, "cairn", args)
}
