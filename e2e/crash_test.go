package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCrashSafety kills backup, prune and repair with SIGKILL at random
// moments, at least crashKills times, and checks after every kill that
//
//   - every checkpoint seen committed is still listed and restores byte for
//     byte, and no checkpoint is listed that was not committed (a killed
//     backup may have committed its own just before the kill: it must then
//     restore to the source it read);
//   - verify passes, at once or after `prune --grace 0s` (which removes the
//     packs a killed backup left unreferenced) and `repair` (which restores
//     shards a kill left missing, as of a manifest killed mid-write).
//
// The image is small (4 MiB, 64 KiB blocks, 1 MiB packs) and commands run
// with --no-sync, so that a kill costs a few short commands and the loop fits
// in CI. Each kind of command gets its own kill window: the time its last
// run to completion took, so that kills land anywhere from process start to
// exit. Between kills the loop keeps the repository busy the way operators
// do: backups of a changing image, forgets that give prune work, and shards
// deleted so that repair has something to rewrite. At most maxLive
// checkpoints are kept, so that restoring all of them after every kill stays
// cheap.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop: skipped in -short mode")
	}
	const (
		size        = 4 * mib
		bs          = 64 * kib
		crashKills  = 100
		maxAttempts = 400
		maxLive     = 4
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	e := newRepo(t, repoOpts{})
	src := filepath.Join(e.scratch, "disk.img")
	writeFile(t, src, randomBytes(seed, int(size)))

	var restores, recovered int
	committed := make(map[string]string) // checkpoint ID -> sha256 of the source it saved
	var order []string                   // committed IDs, oldest first
	commit := func(id, hash string) {
		committed[id] = hash
		order = append(order, id)
	}
	// backup runs a backup to completion. It must never be refused for a
	// pack a killed prune compacted: the chunks are in the pack the index
	// names, and the backup points its parent's references there.
	backup := func() checkpoint {
		r := e.run("backup", "--source", src, "--json")
		var cp checkpoint
		if r.code != 0 || jsonUnmarshal(r.stdout, &cp) != nil || cp.ID == "" {
			t.Fatalf("backup failed:\n%s", r)
		}
		return cp
	}
	forgetOldest := func() {
		id := order[0]
		e.must("forget", id)
		delete(committed, id)
		order = order[1:]
	}

	hash := fileHash(t, src)
	window := make(map[string]time.Duration)
	start := time.Now()
	commit(e.backup(src).ID, hash)
	window["backup"] = time.Since(start)
	for _, c := range []string{"prune", "repair"} {
		start := time.Now()
		e.must(c)
		window[c] = time.Since(start)
	}

	kills := make(map[string]int)
	finished := make(map[string]int)
	for attempt := 0; attempt < maxAttempts && kills["backup"]+kills["prune"]+kills["repair"] < crashKills; attempt++ {
		for len(order) > maxLive {
			forgetOldest()
		}
		kind := [...]string{"backup", "backup", "prune", "repair"}[rng.IntN(4)]
		var args []string
		switch kind {
		case "backup":
			mutate(t, src, rng, size, bs)
			hash = fileHash(t, src)
			args = []string{"backup", "--source", src, "--json"}
		case "prune":
			// Something to delete, and packs part live to compact.
			if len(order) > 1 {
				forgetOldest()
			}
			args = []string{"prune", "--grace", "0s"}
		case "repair":
			packs := e.shardFiles("packs")
			if len(packs) > 0 {
				if err := os.Remove(packs[rng.IntN(len(packs))]); err != nil {
					t.Fatal(err)
				}
			}
			args = []string{"repair"}
		}
		delay := time.Duration(rng.Int64N(int64(window[kind]) + 1))
		r, killed, took := e.runKilledAfter(delay, args...)
		if !killed && r.code != 0 {
			t.Fatalf("attempt %d: %s failed on its own:\n%s", attempt, kind, r)
		}
		if killed {
			kills[kind]++
		} else {
			finished[kind]++
			window[kind] = took
			if kind == "backup" {
				var cp checkpoint
				if err := jsonUnmarshal(r.stdout, &cp); err != nil || cp.ID == "" {
					t.Fatalf("attempt %d: backup exited 0 without a checkpoint: %v\n%s", attempt, err, r)
				}
				commit(cp.ID, hash)
			}
		}

		// Listed checkpoints: every committed one, and at most the one
		// a killed backup committed just before its kill.
		listed := make(map[string]bool)
		for _, c := range e.checkpoints() {
			listed[c.ID] = true
			if _, ok := committed[c.ID]; ok {
				continue
			}
			got := e.restoreHash(c.ID)
			restores++
			if !killed || kind != "backup" || got != hash {
				t.Fatalf("attempt %d (%s, killed=%v after %v): checkpoints lists %s, which was never seen committed and restores to %s (source now %s)",
					attempt, kind, killed, delay, c.ID, got, hash)
			}
			commit(c.ID, hash)
		}
		for _, id := range order {
			if !listed[id] {
				t.Fatalf("attempt %d (%s, killed=%v after %v): committed checkpoint %s is no longer listed", attempt, kind, killed, delay, id)
			}
			e.checkRestore(id, committed[id], fmt.Sprintf("attempt %d, after %s killed=%v at %v", attempt, kind, killed, delay))
			restores++
		}
		if e.verifyAfterKill(false) {
			recovered++
		}
		// As the next scheduled run would, back up again half the time
		// after a killed backup, on top of whatever it left behind.
		if killed && kind == "backup" && rng.IntN(2) == 0 {
			start := time.Now()
			commit(backup().ID, hash)
			window["backup"] = time.Since(start)
			finished["backup"]++
		}
	}
	total := kills["backup"] + kills["prune"] + kills["repair"]
	t.Logf("%d SIGKILLs (backup %d, prune %d, repair %d); ran to completion: backup %d, prune %d, repair %d; %d restores of committed checkpoints checked byte-exact; verify needed prune/repair after %d",
		total, kills["backup"], kills["prune"], kills["repair"], finished["backup"], finished["prune"], finished["repair"], restores, recovered)
	if total < crashKills {
		t.Fatalf("only %d kills in %d attempts, want %d", total, maxAttempts, crashKills)
	}

	mutate(t, src, rng, size, bs)
	hash = fileHash(t, src)
	commit(backup().ID, hash)
	if e.verifyAfterKill(true) {
		t.Log("verify --deep needed prune/repair after the last kill")
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
		n := 1 + rng.Int64N(min(64, blocks/2)) // runs of up to 64 blocks, fewer in a small image
		b := rng.Int64N(blocks - n)
		if _, err := f.WriteAt(randomBytes(rng.Uint64(), int(n*bs)), b*bs); err != nil {
			t.Fatal(err)
		}
		done += n
	}
}

// runKilledAfter starts cairn with args and sends it SIGKILL after delay.
// It reports whether the kill ended it, and how long it took when it
// finished first; a command that failed on its own has its exit code in r.
func (e *env) runKilledAfter(delay time.Duration, args ...string) (r result, killed bool, took time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.command(ctx, args...)
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
	case <-timer.C:
		_ = cmd.Process.Kill() // SIGKILL
		err = <-done
	}
	took = time.Since(start)
	r = result{args: args, stdout: stdout.String(), stderr: stderr.String(), took: took}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return r, false, took
	case errors.As(err, &ee) && !ee.Exited():
		return r, true, 0 // killed by the signal
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		return r, false, took
	default:
		e.t.Fatalf("%s: %v\n%s", args[0], err, r)
	}
	return r, false, 0
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

// verifyAfterKill runs verify; if it fails, it runs `prune --grace 0s`
// (packs a killed backup or prune left unreferenced) and `repair` (shards a
// kill left missing) to completion and requires verify to pass then. It
// reports whether that was needed.
func (e *env) verifyAfterKill(deep bool) (recovered bool) {
	e.t.Helper()
	if rep, _ := e.verifyJSON(deep); rep.OK {
		return false
	}
	e.must("prune", "--grace", "0s")
	e.must("repair")
	if rep, r := e.verifyJSON(deep); !rep.OK {
		e.t.Fatalf("verify fails after prune and repair: committed data is damaged:\n%s", r)
	}
	return true
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
