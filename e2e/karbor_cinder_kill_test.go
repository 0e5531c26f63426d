//go:build ceph

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKarborCinderKill9 kills `cairn serve` with SIGKILL while it reads a
// Cinder volume (its cairn snapshot and attachment exist) and restarts it
// on the same data directory: the checkpoint is then in status error with
// a reason, and the restart removed the snapshot (through Cinder) and the
// attachment the killed job made, so that nothing of cairn's remains in
// Cinder or Ceph; a new protection succeeds and leaves exactly one cairn
// snapshot, and `cairn admin leaks` finds nothing.
func TestKarborCinderKill9(t *testing.T) {
	c := requireCinder(t)
	dir := t.TempDir()
	vol := c.volume("e2e-kill", 1, nil)
	img := "volume-" + vol.ID
	// Enough data that the read lasts while the test looks and kills.
	c.rbd.write(img, 0, randomBytes(51, int(384*mib)))

	a := startCinderAppliance(t, c, dir)
	pr := c.project
	P := "/providers/" + karborProvider
	r := a.ok(200, pr, "POST", "/plans", map[string]any{"plan": map[string]any{
		"name": "kill", "provider_id": karborProvider, "parameters": map[string]any{},
		"resources": []map[string]any{{"id": vol.ID, "type": cinderType, "name": vol.Name}}}})
	plan := r.obj(t, "plan")["id"].(string)
	cp := a.createCheckpoint(pr, plan)

	// The read begins once the volume is located through an attachment.
	deadline := time.Now().Add(2 * time.Minute)
	for len(c.attachments(vol.ID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no attachment of volume %s within 2 minutes of the protection\nstderr: %s", vol.ID, clip(a.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")["status"]; st != "protecting" {
		t.Fatalf("checkpoint %s is %v before the kill, want protecting (the kill must land mid-job)", cp, st)
	}
	a.kill()
	snaps, atts := c.cairnSnapshots(vol.ID), c.attachments(vol.ID)
	t.Logf("killed with %d cairn snapshots and %d attachments in Cinder", len(snaps), len(atts))
	if len(snaps) == 0 {
		t.Fatal("the kill left no cairn snapshot: it did not land while the volume was read")
	}

	a = startCinderAppliance(t, c, dir)
	ck := a.ok(200, pr, "GET", P+"/checkpoints/"+cp, nil).obj(t, "checkpoint")
	if reason, _ := ck["error_reason"].(string); ck["status"] != "error" || !strings.Contains(reason, "interrupted") {
		t.Fatalf("killed checkpoint after the restart: status %v, error_reason %q; want error and a reason", ck["status"], reason)
	}
	// The restart's recovery deletes through Cinder what the killed job
	// made; Cinder deletes a snapshot asynchronously.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		s, at, rs := c.cairnSnapshots(vol.ID), c.attachments(vol.ID), c.rbd.snaps(img)
		if len(s) == 0 && len(at) == 0 && len(rs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the restart: cairn snapshots %+v, attachments %+v, RBD snapshots %v; want none\nstderr: %s",
				s, at, rs, clip(a.stderr.String()))
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The volume protects again, as a full backup (no base survived).
	cp2 := a.createCheckpoint(pr, plan)
	if ck := a.waitCheckpoint(pr, cp2); ck["status"] != "available" {
		t.Fatalf("checkpoint after the restart: %v\nstderr: %s", ck, clip(a.stderr.String()))
	}
	s := c.cairnSnapshots(vol.ID)
	if len(s) != 1 || !slices.Equal(c.rbd.snaps(img), []string{"snapshot-" + s[0].ID}) {
		t.Fatalf("after the new checkpoint: cairn snapshots %+v, RBD snapshots %v; want one, snapshot-<its id>", s, c.rbd.snaps(img))
	}
	if at := c.attachments(vol.ID); len(at) != 0 {
		t.Errorf("attachments left after the new checkpoint: %+v", at)
	}
	if out, code := adminLeaks(t); len(out.of(vol.ID).Leaks) != 0 {
		leaks, _ := out.of(vol.ID).ids()
		t.Errorf("cairn admin leaks after the restart and a new checkpoint: %v (exit %d), want none", leaks, code)
	}
	a.ok(202, pr, "DELETE", P+"/checkpoints/"+cp2, nil)
	a.ok(202, pr, "DELETE", P+"/checkpoints/"+cp, nil)
	deadline = time.Now().Add(time.Minute)
	for len(c.cairnSnapshots(vol.ID)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("cairn snapshots after deleting every checkpoint: %+v", c.cairnSnapshots(vol.ID))
		}
		time.Sleep(500 * time.Millisecond)
	}
	a.stop()
}
