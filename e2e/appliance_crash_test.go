package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApplianceKill9 kills `cairn serve` with SIGKILL while it protects a
// 512 MiB file and restarts it on the same data directory: the checkpoint
// is then in status error with a reason, its operation log failed, no
// repository checkpoint of it is left, a new checkpoint succeeds and
// restores exactly, and the repository verifies (after a prune of the
// killed job's unreferenced packs at most).
func TestApplianceKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("protects a 512 MiB file: skipped in -short mode")
	}
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(vols, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(vols, "big.img")
	writeRandomFile(t, src, 9, 512*mib)
	const pr = "crash"
	P := "/providers/" + karborProvider

	a := startAppliance(t, dir, nil)
	plan := a.createFilePlan(pr, "big", src)
	srcID := fileInstanceID(t, a, pr, src)
	cp := a.createCheckpoint(pr, plan)
	// Let the protection get going (its first packs are written, or 1.5 s
	// passed), then make sure it is still running and kill the daemon.
	e := &env{t: t, repo: filepath.Join(dir, "projects", pr, "repo"), scratch: t.TempDir()}
	for start := time.Now(); time.Since(start) < 1500*time.Millisecond && len(e.shardFiles("packs")) < 2; {
		time.Sleep(20 * time.Millisecond)
	}
	c := a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")
	if c["status"] != "protecting" {
		t.Fatalf("checkpoint %s is %v before the kill, want protecting (the kill must land mid-job): %v", cp, c["status"], c)
	}
	a.kill()
	t.Logf("killed with %d pack files written", len(e.shardFiles("packs")))

	// Restart: the checkpoint is failed with a reason.
	a = startAppliance(t, dir, nil)
	if log := a.stderr.String(); !strings.Contains(log, "interrupted") {
		t.Errorf("restart logged nothing about the interrupted job:\n%s", clip(log))
	}
	c = a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")
	reason, _ := c["error_reason"].(string)
	if c["status"] != "error" || !strings.Contains(reason, "interrupted") {
		t.Fatalf("killed checkpoint after restart: status %v, error_reason %q; want error and a reason", c["status"], reason)
	}
	for _, r := range c["resources"].([]any) {
		rb := r.(map[string]any)
		if rb["status"] != "error" || rb["backup_id"] != nil && rb["backup_id"] != "" {
			t.Errorf("killed checkpoint's resource %v: want error and no backup", rb)
		}
	}
	for _, l := range a.ok(200, pr, "GET", "/operation_logs", nil).list(t, "operation_logs") {
		if l["checkpoint_id"] == cp && l["status"] != "error" {
			t.Errorf("operation log of the killed checkpoint: %v, want status error", l)
		}
	}
	samples := checkPromText(t, string(a.raw("GET", "/metrics", nil).body))
	if samples["cairn_jobs_interrupted_total"] != 1 {
		t.Errorf("cairn_jobs_interrupted_total = %v after one killed job, want 1", samples["cairn_jobs_interrupted_total"])
	}
	// The failed checkpoint cannot be restored; it can be deleted.
	checkFault(t, a.call(pr, "POST", "/restores", map[string]any{"restore": map[string]any{
		"provider_id": karborProvider, "checkpoint_id": cp}}), 409)

	// A new protection succeeds and restores exactly.
	cp2 := a.createCheckpoint(pr, plan)
	if c := a.waitCheckpoint(pr, cp2); c["status"] != "available" {
		t.Fatalf("checkpoint after restart: %v\ndaemon stderr: %s", c, clip(a.stderr.String()))
	}
	out := filepath.Join(dir, "restores", "big.out")
	a.restoreFiles(pr, cp2, map[string]string{srcID: out})
	if fileHash(t, out) != fileHash(t, src) {
		t.Fatal("restore after the crash differs from the source")
	}
	os.Remove(out)
	a.ok(202, pr, "DELETE", P+"/checkpoints/"+cp, nil)
	a.stop()

	// The repository holds exactly the new checkpoint's backup and verifies.
	if cps := e.checkpoints(); len(cps) != 1 {
		t.Errorf("repository has %d checkpoints after the crash and one good protection, want 1: %+v", len(cps), cps)
	}
	if e.verifyAfterCrash(false, "") {
		t.Log("verify needed a prune of the killed job's leftovers")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", "*.cairn-partial")); len(left) != 0 {
		t.Errorf("partial files left: %v", left)
	}
}
