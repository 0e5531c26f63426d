package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The RADOS flags of repo init and repo connect are checked before any
// connection is made, in every build.
func TestRadosFlagErrors(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": filepath.Join(dir, "repo")}}
	c.fail(2, "give one pool for all shards or exactly 6", "repo", "init", "--rados", "p0,p1")
	c.fail(2, "applies only with --rados", "repo", "init", "--ceph-id", "cairn")
	c.fail(2, "exclude each other", "repo", "init", "--rados", "p", "--shard-dirs", "a,b,c,d,e,f")
	c.fail(2, "osd_max_write_size", "repo", "init", "--rados", "p", "--data-shards", "1", "--parity-shards", "0", "--pack-size", "128MiB")
	c.fail(2, "empty pool name", "repo", "init", "--rados", "p,,p,p,p,p")
	c.fail(2, "needs --rados", "repo", "connect", filepath.Join(dir, "other"))
	if _, err := os.Stat(filepath.Join(dir, "repo")); err == nil {
		t.Error("a refused init created the repository directory")
	}
}

func TestReplicationWarningText(t *testing.T) {
	if w := replicationWarning("p", 3, 4, 2); w == "" {
		t.Error("no warning for 4+2 on a size-3 pool")
	}
	for _, tt := range [][3]int{{1, 4, 2}, {3, 1, 0}, {1, 1, 0}} {
		if w := replicationWarning("p", tt[0], tt[1], tt[2]); w != "" {
			t.Errorf("size %d, %d+%d: unexpected warning %q", tt[0], tt[1], tt[2], w)
		}
	}
}
