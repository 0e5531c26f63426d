//go:build ceph

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startCairn starts cairn in the background; wait returns what it did.
func (e *env) startCairn(args ...string) (wait func() result) {
	e.t.Helper()
	_, wait = e.startCairnProc(args...)
	return wait
}

// startCairnProc is startCairn that also hands back the process, for tests
// that pause it at a chosen point.
func (e *env) startCairnProc(args ...string) (*os.Process, func() result) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	cmd := e.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		res := result{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		} else if err != nil {
			res.code, res.stderr = -1, err.Error()
		}
		cancel()
		done <- res
	}()
	return cmd.Process, func() result { return <-done }
}

// TestRadosConcurrentBackups: two cairn processes, each with its own local
// directory connected to one RADOS repository, back up at the same time
// (sources that share blocks); both checkpoints are whole and verify --deep
// is clean.
func TestRadosConcurrentBackups(t *testing.T) {
	r := requireRados(t)
	a, _ := newRadosRepo(t, r, r.pool, geometry42...)
	b := r.connect(t, r.pool)

	shared := randomBytes(51, int(4*mib))
	srcA := filepath.Join(a.scratch, "a.img")
	srcB := filepath.Join(b.scratch, "b.img")
	writeFile(t, srcA, append(append([]byte{}, shared...), randomBytes(52, int(12*mib))...))
	writeFile(t, srcB, append(randomBytes(53, int(12*mib)), shared...))

	waitA := a.startCairn("backup", "--source", srcA, "--json")
	waitB := b.startCairn("backup", "--source", srcB, "--json")
	resA, resB := waitA(), waitB()
	for _, res := range []result{resA, resB} {
		if res.code != 0 {
			t.Fatalf("concurrent backup failed:\n%s", res)
		}
	}
	var cpA, cpB checkpoint
	if err := jsonUnmarshal(resA.stdout, &cpA); err != nil {
		t.Fatal(err)
	}
	if err := jsonUnmarshal(resB.stdout, &cpB); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*env{a, b} {
		if cps := e.checkpoints(); len(cps) != 2 {
			t.Fatalf("%s sees %d checkpoints, want 2", e.repo, len(cps))
		}
	}
	a.must("verify", "--deep")
	b.must("verify", "--deep")
	a.checkRestore(cpB.ID, fileHash(t, srcB), "B's backup, restored through A")
	b.checkRestore(cpA.ID, fileHash(t, srcA), "A's backup, restored through B")
	if objs := r.objects(r.pool, "s0/locks/"); len(objs) != 0 {
		t.Errorf("locks left after both backups ended: %v", objs)
	}
}

// TestRadosPruneDuringBackup: while process A backs up a volume whose first
// blocks dedup against a checkpoint that process B has forgotten, B's prune
// finds A's lock and deletes nothing; A's checkpoint is whole, and a prune
// after A is done keeps what A references.
func TestRadosPruneDuringBackup(t *testing.T) {
	r := requireRados(t)
	a, _ := newRadosRepo(t, r, r.pool, geometry42...)
	old := randomBytes(61, int(4*mib))
	src := filepath.Join(a.scratch, "vol.img")
	writeFile(t, src, old)
	cp0 := a.backup(src)
	b := r.connect(t, r.pool)
	b.must("forget", cp0.ID)

	// The old blocks first (A's index finds them in cp0's packs), then
	// enough new data that the backup is still running when B prunes.
	writeFile(t, src, append(append([]byte{}, old...), randomBytes(62, int(96*mib))...))
	procA, waitA := a.startCairnProc("backup", "--source", src, "--json")
	deadline := time.Now().Add(time.Minute)
	for len(r.objects(r.pool, "s0/locks/")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("A's backup wrote no lock object:\n%s", waitA())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A is stopped, not raced: on a loaded machine B's prune took long
	// enough to start that A had committed (its checkpoint then keeps
	// cp0's packs live and there is nothing to block).
	if err := procA.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	resume := func() {
		if !continued {
			continued = true
			_ = procA.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	if m := r.objects(r.pool, "s0/manifests/"); len(m) != 0 {
		t.Fatalf("A committed %v before it could be paused: the test needs a larger source", m)
	}
	var rep pruneReport
	if err := jsonUnmarshal(b.must("prune", "--grace", "0", "--json"), &rep); err != nil {
		t.Fatal(err)
	}
	resume()
	resA := waitA()
	if resA.code != 0 {
		t.Fatalf("backup during a prune failed:\n%s", resA)
	}
	if rep.PacksDeleted != 0 || rep.PacksLeft == 0 || !strings.Contains(rep.BlockedBy, "backing up") {
		t.Errorf("prune during A's backup: deleted %d, left %d, blocked by %q; want 0, > 0, A's backup",
			rep.PacksDeleted, rep.PacksLeft, rep.BlockedBy)
	}
	var cpA checkpoint
	if err := jsonUnmarshal(resA.stdout, &cpA); err != nil {
		t.Fatal(err)
	}
	want := fileHash(t, src)
	a.must("verify", "--deep")
	a.checkRestore(cpA.ID, want, "backup that ran during a prune")

	// Now nothing runs: B's prune deletes only what no checkpoint uses.
	rep = pruneReport{}
	if err := jsonUnmarshal(b.must("prune", "--grace", "0", "--json"), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.BlockedBy != "" {
		t.Errorf("prune with nothing running was blocked by %q", rep.BlockedBy)
	}
	a.must("verify", "--deep")
	a.checkRestore(cpA.ID, want, "after the second prune")
	// A's index learns about B's prune before its next backup.
	cp2 := a.backup(src)
	a.checkRestore(cp2.ID, want, "backup after B's prune")
	a.must("verify", "--deep")
}

// pruneReport is prune --json's output, as far as these tests need it.
type pruneReport struct {
	PacksDeleted int    `json:"packs_deleted"`
	PacksLeft    int    `json:"packs_left"`
	BlockedBy    string `json:"blocked_by"`
}
