//go:build ceph

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// radosPool is the pool the RADOS repository tests share; each test works in
// a namespace of its own.
const radosPool = "cairn-e2e"

// radosT is a test's repository namespace in the cluster of $CEPH_CONF.
type radosT struct {
	t         *testing.T
	pool      string
	namespace string
}

// requireRados skips the test without a cluster (fails under
// CAIRN_REQUIRE_ALL=1), creates the shared pool and picks a namespace.
func requireRados(t *testing.T) *radosT {
	t.Helper()
	if os.Getenv("CEPH_CONF") == "" {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatal("Ceph cluster required: run make ceph-up and export CEPH_CONF (make test does both)")
		}
		t.Skip("CEPH_CONF not set: no Ceph cluster (make ceph-up)")
	}
	requireTool(t, "rados")
	requireTool(t, "ceph")
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &radosT{t: t, pool: radosPool, namespace: "e2e-" + hex.EncodeToString(b[:])}
	r.cli("ceph", "osd", "pool", "create", r.pool, "8")
	return r
}

// cli runs a Ceph tool and returns its stdout. The ceph CLI's first
// exchange with a busy monitor sometimes fails ("problem getting command
// descriptions from mon", EPERM) and succeeds when repeated: that one
// failure is tried again, a few times.
func (r *radosT) cli(name string, args ...string) string {
	r.t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, name, args...).Output()
		cancel()
		if err == nil {
			return string(out)
		}
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		if try < 4 && strings.Contains(msg, "problem getting command descriptions") {
			r.t.Logf("%s %s: %s; trying again", name, strings.Join(args, " "), strings.TrimSpace(msg))
			time.Sleep(time.Duration(try) * time.Second)
			continue
		}
		r.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
}

// objects lists the namespace's RADOS objects under prefix.
func (r *radosT) objects(pool, prefix string) []string {
	r.t.Helper()
	var out []string
	for _, o := range strings.Fields(r.cli("rados", "-p", pool, "-N", r.namespace, "ls")) {
		if strings.HasPrefix(o, prefix) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// newRadosRepo inits a repository in r's namespace with the given geometry
// flags and returns it and repo init's stderr.
func newRadosRepo(t *testing.T, r *radosT, pools string, geometry ...string) (*env, string) {
	t.Helper()
	e := newDirEnv(t)
	args := append([]string{"repo", "init", "--rados", pools, "--rados-namespace", r.namespace,
		"--ceph-conf", os.Getenv("CEPH_CONF")}, geometry...)
	res := e.run(append(args, smallGeometry...)...)
	if res.code != 0 {
		t.Fatalf("repo init on RADOS failed:\n%s", res)
	}
	return e, res.stderr
}

// newDirEnv is an env whose repository directory does not exist yet.
func newDirEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, repo: filepath.Join(dir, "repo"), scratch: filepath.Join(dir, "scratch")}
	if err := os.Mkdir(e.scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

// connect makes a second local handle on e's RADOS repository.
func (r *radosT) connect(t *testing.T, pools string) *env {
	t.Helper()
	e := newDirEnv(t)
	e.must("repo", "connect", "--rados", pools, "--rados-namespace", r.namespace,
		"--ceph-conf", os.Getenv("CEPH_CONF"), e.repo)
	return e
}

var geometry42 = []string{"--data-shards", "4", "--parity-shards", "2"}

// TestRadosRepository: a 4+2 repository in one pool round-trips, survives
// losing two shard objects of every pack (restore exact, verify reports,
// repair heals), and comes back from RADOS alone after the local directory
// is lost.
func TestRadosRepository(t *testing.T) {
	r := requireRados(t)
	e, initErr := newRadosRepo(t, r, r.pool, geometry42...)
	if strings.Contains(initErr, "redundancy") {
		t.Errorf("repo init warned about replication on a size-1 pool: %s", initErr)
	}
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(41, int(6*mib+777)))
	cp1 := e.backup(src)
	writeAt(t, src, randomBytes(42, int(mib)), 2*mib)
	cp2 := e.backup(src)
	want2 := fileHash(t, src)
	e.checkRestore(cp2.ID, want2, "second backup")
	e.must("verify", "--deep")

	// Two shard objects of every pack, cycling through the pairs.
	packs := map[string][]string{} // pack name -> its shard objects
	for _, o := range r.objects(r.pool, "") {
		if i := strings.Index(o, "/packs/"); i > 0 {
			packs[o[i+1:]] = append(packs[o[i+1:]], o)
		}
	}
	if len(packs) == 0 {
		t.Fatal("no pack objects in RADOS")
	}
	pairs := shardPairs(6)
	j := 0
	for name, shards := range packs {
		if len(shards) != 6 {
			t.Fatalf("pack %s has %d shard objects, want 6: %v", name, len(shards), shards)
		}
		slices.Sort(shards)
		for _, i := range pairs[j%len(pairs)] {
			r.cli("rados", "-p", r.pool, "-N", r.namespace, "rm", shards[i])
		}
		j++
	}
	e.checkRestore(cp2.ID, want2, "after losing 2 shards of every pack")
	res := e.run("verify")
	if res.code == 0 || !damageWords.MatchString(res.stdout+res.stderr) {
		t.Fatalf("verify after losing shards: want a damage report and exit 1:\n%s", res)
	}
	e.must("repair")
	e.must("verify", "--deep")
	if n := len(r.objects(r.pool, "s")); n == 0 {
		t.Fatal("no objects after repair")
	}

	// The local directory is gone: connect a new one from RADOS alone.
	if err := os.RemoveAll(e.repo); err != nil {
		t.Fatal(err)
	}
	e2 := r.connect(t, r.pool)
	if cps := e2.checkpoints(); len(cps) != 2 {
		t.Fatalf("after connect: %d checkpoints, want 2", len(cps))
	}
	e2.checkRestore(cp2.ID, want2, "after connect")
	e2.restoreHash(cp1.ID)
	e2.must("verify", "--deep")
	// And rebuild-index on the connected directory, from RADOS again.
	if err := os.RemoveAll(filepath.Join(e2.repo, "index")); err != nil {
		t.Fatal(err)
	}
	e2.must("repo", "rebuild-index")
	e2.checkRestore(cp2.ID, want2, "after rebuild-index")
}

// TestRadosOneShardReplicatedPool: k=1, m=0 works, and a replicated pool
// under k+m > 1 shards draws the two-layers warning.
func TestRadosOneShardReplicatedPool(t *testing.T) {
	r := requireRados(t)
	replicated := "cairn-e2e-size2"
	r.cli("ceph", "osd", "pool", "create", replicated, "8")
	r.cli("ceph", "osd", "pool", "set", replicated, "size", "2", "--yes-i-really-mean-it")

	e, initErr := newRadosRepo(t, r, replicated, "--data-shards", "1", "--parity-shards", "0")
	if strings.Contains(initErr, "redundancy") {
		t.Errorf("1+0 on a replicated pool should not warn: %s", initErr)
	}
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(43, int(3*mib+5)))
	cp := e.backup(src)
	e.checkRestore(cp.ID, fileHash(t, src), "1+0 repository")
	e.must("verify", "--deep")

	r2 := &radosT{t: t, pool: replicated, namespace: r.namespace + "-42"}
	_, initErr = newRadosRepo(t, r2, replicated, geometry42...)
	if !strings.Contains(initErr, "two redundancy layers multiply capacity") {
		t.Errorf("4+2 on a size-2 pool: want the two-layers warning on stderr, got %q", initErr)
	}
}
