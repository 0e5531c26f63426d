//go:build !ceph

package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// Without the ceph tag every RBD feature says how to get it, and the rest
// of the CLI works.
func TestCLIRBDWithoutCeph(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, env: map[string]string{"CAIRN_REPO": filepath.Join(dir, "repo")}}
	c.ok("repo", "init", "--block-size", "64KiB")
	c.fail(1, "built without Ceph support", "backup", "--source", "rbd:pool/image")
	c.fail(1, "built without Ceph support", "verify", "--against-source", "0197")
	src := filepath.Join(dir, "vol.img")
	writeSparse(t, src, 1)
	c.fail(2, "--verify-sample applies only to rbd: sources", "backup", "--source", src, "--verify-sample", "0.5")
	c.ok("backup", "--source", src, "--read-workers", "2")
	c.fail(1, "built without Ceph support", "restore", latestID(t, c), "--to", "rbd:pool/image")
}

func latestID(t *testing.T, c *cli) string {
	t.Helper()
	r := c.ok("--json", "checkpoints")
	var cps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &cps); err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints: %v %s", err, r.stdout)
	}
	return cps[len(cps)-1].ID
}
