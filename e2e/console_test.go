package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// consoleSetup starts cairn serve (noauth unless cfg says otherwise) over
// a data directory with file roots per project, and writes a partitioned
// disk with an ext4 holding hostname into projA's root. It returns the
// appliance, the data directory and the disk's path.
func consoleSetup(t *testing.T, cfg map[string]any, projA, projB string) (*appliance, string, string, string) {
	t.Helper()
	fuseRequire(t, "sfdisk", "mkfs.ext4", "mount", "umount", "losetup")
	requireBrowser(t)
	dir := t.TempDir()
	for _, p := range []string{projA, projB} {
		if err := os.MkdirAll(filepath.Join(dir, "volumes", p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "volumes", projA, "console-disk.img")
	fusePartitionedDisk(t, disk, "gpt", fuseTree(t, map[string][]byte{
		"etc/hostname":  []byte("cairn-console-test\n"),
		"data/blob.bin": randomBytes(7, 300<<10),
	}))
	other := filepath.Join(dir, "volumes", projB, "other-volume.img")
	writeRandomFile(t, other, 8, 256<<10)
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["file_roots"] = []string{filepath.Join(dir, "volumes", "{project_id}")}
	cfg["restore_dir"] = filepath.Join(dir, "restores", "{project_id}")
	return startAppliance(t, dir, cfg), dir, disk, other
}

// TestConsoleNoAuth drives the console in headless chromium through the
// whole project flow: pick a project, see its plan's resource, protect
// it and watch the progress bar reach 100%, check the timeline's sizes
// against `cairn checkpoints --json`, restore to a new file and compare
// it, browse the checkpoint's files and download one; then project B
// sees nothing of project A. Screenshots of each page are artefacts.
func TestConsoleNoAuth(t *testing.T) {
	const projA, projB = "console-a", "console-b"
	a, dir, disk, other := consoleSetup(t, nil, projA, projB)
	planA := a.createFilePlan(projA, "plan-a", disk)
	a.waitCheckpoint(projB, a.createCheckpoint(projB, a.createFilePlan(projB, "plan-b", other)))
	writeRandomFile(t, filepath.Join(dir, "volumes", projA, "spare-volume.img"), 9, 64<<10)
	b := startBrowser(t)

	// The project picker of noauth.
	b.open(a.base() + "/")
	b.typeInto("#login-noauth-project", projA)
	b.screenshot("01-login-noauth")
	b.click("#login-noauth-submit")
	b.wait(30*time.Second, "the project view", "return document.querySelector('main').dataset.ready === 'yes'")
	row := `#resources tr.resource`
	if got := b.text(row); !strings.Contains(got, "console-disk.img") {
		t.Fatalf("resources row %q lacks the plan's disk", got)
	}
	if got := b.text("#plans tr.plan"); !strings.Contains(got, "plan-a") {
		t.Fatalf("plans row %q", got)
	}
	// A file no plan protects is listed apart, as not protected.
	unprot := b.wait(30*time.Second, "the unprotected list", `const t = document.querySelector('#unprotected'); return t && t.textContent`).(string)
	if !strings.Contains(unprot, "spare-volume.img") || strings.Contains(unprot, "console-disk.img") {
		t.Fatalf("not protected: %q", unprot)
	}
	b.screenshot("02-project")

	// Protect now; the job's bar ends at 100%. Every value seen on the way
	// must only grow.
	b.click(`#plans tr.plan[data-id="` + planA + `"] button.protect-now`)
	var seen []float64
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v struct {
			Pct    float64 `json:"pct"`
			Status string  `json:"status"`
			ID     string  `json:"id"`
			Done   float64 `json:"done"`
		}
		b.js(&v, `const r = document.querySelector('#jobs tr.job[data-kind=protect]');
			if (!r) return {pct: -1};
			const p = r.querySelector('[role=progressbar]');
			return {pct: Number(p.getAttribute('aria-valuenow')), status: r.dataset.status || '', id: r.dataset.id, done: Number(p.dataset.done)};`)
		if v.Pct >= 0 {
			seen = append(seen, v.Pct)
		}
		if v.Status != "" {
			if v.Status != "available" || v.Pct != 100 || v.Done <= 0 {
				t.Fatalf("finished protection: %+v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			b.screenshot("timeout-protect")
			t.Fatalf("protection not finished in the console after 2 min; bars seen %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("the progress bar went back: %v", seen)
		}
	}
	b.screenshot("03-protected")

	// The timeline's sizes are the repository's, as the CLI lists them.
	b.click(row + " a.open-timeline")
	b.find("#timeline tr.checkpoint")
	var sizes map[string]float64
	b.js(&sizes, `const r = document.querySelector('#timeline tr.checkpoint'); const o = {};
		for (const k of ['size', 'allocated_bytes', 'read_bytes', 'new_bytes', 'stored_bytes'])
			o[k] = Number(r.querySelector('.bytes-' + k + ' .size').dataset.bytes);
		o.id = 0; return o;`)
	var cpID string
	b.js(&cpID, `return document.querySelector('#timeline tr.checkpoint').dataset.id`)
	apiCP := a.waitCheckpoint(projA, cpID)
	backupID := apiCP["resources"].([]any)[0].(map[string]any)["backup_id"].(string)
	cli := &env{t: t, repo: dir, project: projA}
	var found bool
	for _, c := range cli.checkpoints() {
		if c.ID != backupID {
			continue
		}
		found = true
		want := map[string]float64{"size": float64(c.Size), "allocated_bytes": float64(c.AllocatedBytes), "read_bytes": float64(c.ReadBytes),
			"new_bytes": float64(c.NewBytes), "stored_bytes": float64(c.StoredBytes), "id": 0}
		for k, v := range want {
			if sizes[k] != v {
				t.Errorf("timeline %s = %v, cairn checkpoints --json says %v", k, sizes[k], v)
			}
		}
	}
	if !found {
		t.Fatalf("cairn checkpoints --json lacks backup %s of checkpoint %s", backupID, cpID)
	}
	var hover string
	b.js(&hover, `return document.querySelector('#timeline tr.checkpoint .bytes-size .size').title`)
	if want := "69,206,016 bytes"; hover != want {
		t.Errorf("size on hover %q, want %q", hover, want)
	}
	b.screenshot("04-timeline")

	// Restore to a new file (the plugin's default) and compare it.
	b.click(`#timeline tr.checkpoint[data-id="` + cpID + `"] button.restore`)
	b.find("#restore-form #restore-restore_path") // the plugin's schema, as a form
	b.screenshot("05-restore-form")
	b.click("#restore-submit")
	restored := b.wait(2*time.Minute, "the restore's result", `const c = document.querySelector('.restore-result.status-success code.restored'); return c && c.textContent`).(string)
	got, err := os.ReadFile(restored)
	if err != nil {
		t.Fatalf("the restored file: %v", err)
	}
	want, _ := os.ReadFile(disk)
	if !bytes.Equal(got, want) {
		t.Fatalf("restored %s (%d bytes) differs from %s (%d bytes)", restored, len(got), disk, len(want))
	}
	if !strings.HasPrefix(restored, filepath.Join(dir, "restores", projA)) {
		t.Errorf("restored to %s, outside the project's restore directory", restored)
	}
	b.screenshot("06-restored")

	// Browse the checkpoint's first partition and download a file.
	b.click(`#timeline tr.checkpoint[data-id="` + cpID + `"] button.browse`)
	b.click(`#files tr.file[data-name="etc"] a.dir`)
	b.wait(30*time.Second, "etc/", `return document.querySelector('#files-path').textContent === '/etc/'`)
	b.click(`#files tr.file[data-name="hostname"] a.download`)
	if got := b.downloaded("hostname"); string(got) != "cairn-console-test\n" {
		t.Fatalf("downloaded hostname %q", got)
	}
	b.screenshot("07-files")

	// Export the checkpoint over NBD: the URL shown serves the disk's
	// bytes; once stopped, it serves nothing.
	b.click(`#timeline tr.checkpoint[data-id="` + cpID + `"] button.export`)
	uri := b.wait(30*time.Second, "the export's URL", `const c = document.querySelector('#exports tr.nbd-export code.url'); return c && c.textContent`).(string)
	copied := filepath.Join(t.TempDir(), "nbd-copy.img")
	if out, err := exec.Command(requireTool(t, "nbdcopy"), uri, copied).CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy %s: %v\n%s", uri, err, out)
	}
	if got, _ := os.ReadFile(copied); !bytes.Equal(got, want) {
		t.Fatalf("the NBD export's %d bytes differ from the disk's %d", len(got), len(want))
	}
	b.screenshot("08-export")
	b.click(`#exports tr.nbd-export button.stop-export`)
	b.find("#no-exports")
	if out, err := exec.Command(requireTool(t, "nbdinfo"), "--size", uri).CombinedOutput(); err == nil {
		t.Fatalf("the stopped export still answers: %s", out)
	}

	// Delete the checkpoint (two clicks); another one stays for project
	// B to try.
	kept := a.createCheckpoint(projA, planA)
	a.waitCheckpoint(projA, kept)
	del := `#timeline tr.checkpoint[data-id="` + cpID + `"] button.delete`
	b.click(del)
	b.click(del)
	b.wait(30*time.Second, "the checkpoint's deletion", `return !document.querySelector('#timeline tr.checkpoint[data-id="' + arguments[0] + '"]')`, cpID)
	if r := a.call(projA, "GET", "/providers/"+karborProvider+"/checkpoints/"+cpID, nil); r.code != 404 {
		t.Fatalf("the deleted checkpoint: %s", r)
	}
	b.screenshot("09-deleted")

	// Project B sees its own resource and nothing of project A, in the
	// view and through the API the view uses.
	b.open(a.base() + "/#/login")
	b.typeInto("#login-noauth-project", projB)
	b.click("#login-noauth-submit")
	b.wait(30*time.Second, "project B's view", "return document.querySelector('main').dataset.ready === 'yes' && location.hash.includes('console-b')")
	if got := b.text("#resources"); strings.Contains(got, "console-disk") || !strings.Contains(got, "other-volume.img") {
		t.Fatalf("project B's resources %q", got)
	}
	if got := b.text("#plans"); strings.Contains(got, "plan-a") {
		t.Fatalf("project B's plans show project A's: %q", got)
	}
	var status float64
	b.js(&status, `return fetch('/v1/console-b/providers/cf56bd3e-97a7-4078-b6d5-f36246333fd9/checkpoints/' + arguments[0] + '/files?resource=x',
		{headers: {'X-Auth-Token': 'noauth'}}).then((r) => r.status)`, cpID)
	if status != 404 {
		t.Errorf("project B reading project A's checkpoint files: %v, want 404", status)
	}
	b.screenshot("10-project-b")
}
