package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKarborSymlinks plants symlinks in the daemon's folders, as a user
// with write access to them could: a link to a secret in the protectable
// folder is neither listed nor protectable, and a restore through a
// symlinked directory, onto a link, or onto an existing file is refused
// with a 400 at request time, with nothing written outside.
func TestKarborSymlinks(t *testing.T) {
	dir := t.TempDir()
	vols, restores := filepath.Join(dir, "volumes"), filepath.Join(dir, "restores")
	for _, d := range []string{vols, restores} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	writeFile(t, secret, []byte("root:$6$secret"))
	src := filepath.Join(vols, "disk.img")
	writeRandomFile(t, src, 7, 128*kib)
	link := filepath.Join(vols, "shadow.img")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(restores, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.out"), filepath.Join(restores, "link.out")); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(restores, "existing.out")
	writeFile(t, existing, []byte("keep"))

	a := startAppliance(t, dir, nil)
	const pr = "demo"
	for _, in := range a.ok(200, pr, "GET", "/protectables/"+fileType+"/instances", nil).list(t, "instances") {
		if in["name"] != src {
			t.Errorf("instance %v listed; only %s is a regular file", in["name"], src)
		}
	}
	// The symlink's ID (name-based, so computable without the listing) is
	// not protectable.
	r := a.call(pr, "POST", "/plans", map[string]any{"plan": map[string]any{"name": "steal", "provider_id": karborProvider,
		"resources": []map[string]any{{"id": symlinkInstanceID(t, a, link), "type": fileType, "name": link}}}})
	checkFault(t, r, 400)
	// A file planned while regular and swapped for a symlink before the
	// backup: the backup fails rather than reading the secret.
	swap := filepath.Join(vols, "swap.img")
	writeRandomFile(t, swap, 8, 64*kib)
	swapPlan := a.createFilePlan(pr, "swap", swap)
	if err := os.Remove(swap); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, swap); err != nil {
		t.Fatal(err)
	}
	if c := a.waitCheckpoint(pr, a.createCheckpoint(pr, swapPlan)); c["status"] != "error" {
		t.Errorf("checkpoint of a file swapped for a symlink: %v, want status error", c["status"])
	}

	plan := a.createFilePlan(pr, "good", src)
	cp := a.createCheckpoint(pr, plan)
	if c := a.waitCheckpoint(pr, cp); c["status"] != "available" {
		t.Fatalf("checkpoint: %v", c)
	}
	for _, bad := range []string{
		filepath.Join(restores, "escape", "x.out"),
		filepath.Join(restores, "escape", "sub", "x.out"),
		filepath.Join(restores, "link.out"),
		existing,
		filepath.Join(outside, "y.out"),
	} {
		for name, body := range map[string]map[string]any{
			"restore_target": {"provider_id": karborProvider, "checkpoint_id": cp, "restore_target": bad},
			"restore_path": {"provider_id": karborProvider, "checkpoint_id": cp,
				"parameters": map[string]any{fileType: map[string]any{"restore_path": bad}}},
		} {
			r := a.call(pr, "POST", "/restores", map[string]any{"restore": body})
			checkFault(t, r, 400)
			if !strings.Contains(string(r.body), bad) {
				t.Errorf("%s %s: the fault does not name the path: %s", name, bad, r)
			}
		}
	}
	if l := a.ok(200, pr, "GET", "/restores", nil).list(t, "restores"); len(l) != 0 {
		t.Errorf("refused restores were queued: %v", l)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the restore folder: %v", ents)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("existing file changed: %q", b)
	}
	// A good target in a new subdirectory still works.
	a.restoreFiles(pr, cp, map[string]string{fileInstanceID(t, a, pr, src): filepath.Join(restores, "new", "disk.out")})
	got, err := os.ReadFile(filepath.Join(restores, "new", "disk.out"))
	want, _ := os.ReadFile(src)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("restored file differs from the source (%v)", err)
	}
	a.stop()
}

// symlinkInstanceID is the ID the file plugin would give a file at path
// (a name-based UUID): found by listing a regular file put at path for a
// moment; the symlink is then put back.
func symlinkInstanceID(t *testing.T, a *appliance, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, []byte("x"))
	id := fileInstanceID(t, a, "demo", path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return id
}
