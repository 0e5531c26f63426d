package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCrashSafety kills backups with SIGKILL at random points and checks
// after each kill that the repository verifies, that every checkpoint seen
// committed still restores exactly, and that no checkpoint appears that was
// not committed.
//
// A backup killed while writing a pack may leave that pack with only some
// of its shards, and whole packs that no manifest references. Neither is
// damage to committed data, but verify walks every pack in the shard stores
// and reports the incomplete ones as damaged shards and unrecoverable
// objects. When verify fails right after a kill, the test therefore runs
// `prune --grace 0s`, which deletes unreferenced packs, and then requires
// verify to pass: damage to anything a checkpoint references survives prune
// and still fails the test, as do the restores.
//
// Each iteration rewrites a random 50-100% of the image, so that its backup
// takes about as long as a full one and the kill, uniform between 0 and the
// time of a full backup (see window below), lands anywhere from the first
// read to the commit. Many backups are therefore killed; after half of the
// kills the test backs
// up again to completion, as the next scheduled run would, so that committed
// checkpoints pile up and later backups start on top of the leftovers of
// killed ones (packs in the index that no checkpoint references yet).
//
// Restoring every checkpoint after every kill grows quadratically (a 96 MiB
// restore and hash take over a second here), so after each iteration the
// test restores the checkpoints that are new, the latest and one random
// older one, and relies on verify, which reads every shard of every pack
// and manifest and checks that every referenced chunk is in a readable pack,
// for the rest. At the end it restores them all.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop over a 96 MiB image: skipped in -short mode")
	}
	const (
		size       = 96 * mib
		bs         = 64 * kib
		iterations = 10
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	e := newRepo(t, repoOpts{})
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(seed, int(size)))

	committed := make(map[string]string) // checkpoint ID -> sha256 of the source it saved
	var order []string                   // committed IDs, oldest first
	commit := func(id, hash string) {
		committed[id] = hash
		order = append(order, id)
	}

	hash := fileHash(t, src)
	start := time.Now()
	cp := e.backup(src)
	full := time.Since(start)
	t.Logf("full backup of %d MiB took %v", size/mib, full.Round(time.Millisecond))
	commit(cp.ID, hash)

	// The kill window is the full backup's time, or the time of the last
	// backup that finished if that was shorter: the machine may be shared
	// and its load vary, and a window much longer than a backup would
	// mostly kill nothing.
	window := full
	finished := func(took time.Duration) { window = min(full, took*5/4) }

	var kills, completed, prunes int
	for i := range iterations {
		mutate(t, src, rng, size, bs)
		hash = fileHash(t, src)
		delay := time.Duration(rng.Int64N(int64(window) + 1))
		cp, killed, took := e.backupKilledAfter(src, delay)
		if killed {
			kills++
			t.Logf("iteration %d: killed the backup after %v", i, delay.Round(time.Millisecond))
		} else {
			completed++
			finished(took)
			commit(cp.ID, hash)
			t.Logf("iteration %d: backup %s (new_bytes %d) finished in %v, before the kill at %v",
				i, cp.ID, cp.NewBytes, took.Round(time.Millisecond), delay.Round(time.Millisecond))
		}
		// Every listed checkpoint must be one we saw committed, or the
		// killed backup of this very iteration if it got as far as its
		// commit before the kill.
		listed := make(map[string]bool)
		check := make(map[string]bool) // what to restore this time
		killedCommit := ""
		for _, c := range e.checkpoints() {
			listed[c.ID] = true
			if _, ok := committed[c.ID]; ok {
				continue
			}
			got := e.restoreHash(c.ID)
			if !killed || got != hash {
				t.Fatalf("iteration %d: checkpoints lists %s, which was never seen committed and restores to %s (this iteration's source: %s, killed=%v)",
					i, c.ID, got, hash, killed)
			}
			t.Logf("iteration %d: the killed backup had committed %s", i, c.ID)
			commit(c.ID, hash)
			killedCommit = c.ID
		}
		if e.verifyAfterCrash(false, killedCommit) {
			prunes++
		}
		check[order[len(order)-1]] = true
		check[order[rng.IntN(len(order))]] = true
		for _, id := range order {
			if !listed[id] {
				t.Fatalf("iteration %d: committed checkpoint %s is no longer listed", i, id)
			}
			if check[id] {
				e.checkRestore(id, committed[id], "after a killed backup")
			}
		}

		// As the next scheduled run would, back up again half the time,
		// on top of whatever the killed backup left (indexed packs no
		// checkpoint references yet, or none after a prune).
		if killed && rng.IntN(2) == 0 {
			start := time.Now()
			cp := e.backup(src)
			finished(time.Since(start))
			commit(cp.ID, hash)
			t.Logf("iteration %d: backup %s after the kill (new_bytes %d)", i, cp.ID, cp.NewBytes)
			e.checkRestore(cp.ID, hash, "backup after a killed one")
		}
	}
	t.Logf("%d backups killed, %d finished first; verify needed a prune after %d kills", kills, completed, prunes)
	if kills == 0 {
		t.Log("note: no backup was actually killed in this run")
	}

	mutate(t, src, rng, size, bs)
	hash = fileHash(t, src)
	commit(e.backup(src).ID, hash)
	if e.verifyAfterCrash(true, "") {
		t.Log("verify --deep needed a prune to pass after the last kill")
	}
	if n := len(e.checkpoints()); n != len(order) {
		t.Errorf("%d checkpoints listed at the end, want %d", n, len(order))
	}
	for _, id := range order {
		e.checkRestore(id, committed[id], "at the end")
	}
}

// mutate overwrites random block-aligned runs of the file, 50-100% of it in
// all (runs may overlap, so somewhat less in fact).
func mutate(t *testing.T, path string, rng *rand.Rand, size, bs int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := size / bs
	target := blocks * (50 + rng.Int64N(51)) / 100
	for done := int64(0); done < target; {
		n := 1 + rng.Int64N(64)
		b := rng.Int64N(blocks - n)
		if _, err := f.WriteAt(randomBytes(rng.Uint64(), int(n*bs)), b*bs); err != nil {
			t.Fatal(err)
		}
		done += n
	}
}

// backupKilledAfter starts a backup of src and sends it SIGKILL after delay.
// It returns the checkpoint and how long the backup took when it finished
// first.
func (e *env) backupKilledAfter(src string, delay time.Duration) (cp checkpoint, killed bool, took time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.command(ctx, "backup", "--source", src, "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
		took = time.Since(start)
	case <-timer.C:
		_ = cmd.Process.Kill() // SIGKILL
		err = <-done
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		if jerr := json.Unmarshal(stdout.Bytes(), &cp); jerr != nil || cp.ID == "" {
			e.t.Fatalf("backup exited 0 without a checkpoint on stdout: %v\nstdout: %s", jerr, clip(stdout.String()))
		}
		if took == 0 { // exited 0 just as it was killed
			took = time.Since(start)
		}
		return cp, false, took
	case errors.As(err, &ee) && !ee.Exited():
		return cp, true, 0 // killed by the signal
	default:
		e.t.Fatalf("backup failed on its own: %v\nstderr: %s", err, clip(stderr.String()))
	}
	return cp, false, 0
}

// verifyReport is the part of `verify --json` the crash test reads.
type verifyReport struct {
	OK            bool `json:"ok"`
	DamagedShards []struct {
		Object  string `json:"object"`
		Shard   int    `json:"shard"`
		Problem string `json:"problem"`
	} `json:"damaged_shards"`
	BadChunks     []string `json:"bad_chunks"`
	MissingChunks []string `json:"missing_chunks"`
	Unrecoverable []string `json:"unrecoverable"`
}

func (e *env) verifyJSON(deep bool) (verifyReport, result) {
	e.t.Helper()
	args := []string{"verify", "--json"}
	if deep {
		args = append(args, "--deep")
	}
	r := e.run(args...)
	var rep verifyReport
	if err := jsonUnmarshal(r.stdout, &rep); err != nil {
		e.t.Fatalf("verify --json printed no report: %v\n%s", err, r)
	}
	if rep.OK != (r.code == 0) {
		e.t.Errorf("verify --json says ok=%v but exits %d", rep.OK, r.code)
	}
	return rep, r
}

// verifyAfterCrash runs verify; if it fails, it prunes unreferenced packs
// (see TestCrashSafety) and requires verify to pass then. It reports whether
// the prune was needed.
//
// One thing prune cannot remove: a backup killed while writing its manifest
// may leave k to k+m-1 of the manifest's shards. That is a committed
// checkpoint with reduced redundancy (docs/format.md §13.2), which repair
// restores. killedCommit names such a checkpoint, seen listed after the
// kill; missing shards of its manifest, and nothing else, are then repaired.
func (e *env) verifyAfterCrash(deep bool, killedCommit string) (pruned bool) {
	e.t.Helper()
	rep, r := e.verifyJSON(deep)
	if rep.OK {
		return false
	}
	e.t.Logf("verify failed before prune (allowed only for leftovers of the killed backup):\n%s", r)
	e.must("prune", "--grace", "0s")
	rep, r = e.verifyJSON(deep)
	if rep.OK {
		return true
	}
	repairable := killedCommit != "" && len(rep.BadChunks)+len(rep.MissingChunks)+len(rep.Unrecoverable) == 0
	for _, d := range rep.DamagedShards {
		if d.Object != "manifests/"+killedCommit || d.Problem != "missing" {
			repairable = false
		}
	}
	if !repairable {
		e.t.Fatalf("verify still fails after prune --grace 0s: committed data is damaged:\n%s", r)
	}
	e.t.Logf("the killed backup committed %s with %d manifest shards missing; repairing", killedCommit, len(rep.DamagedShards))
	e.must("repair")
	if rep, r := e.verifyJSON(deep); !rep.OK {
		e.t.Fatalf("verify fails after repairing the killed backup's manifest:\n%s", r)
	}
	return true
}
