package dedup

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// gatedSource blocks reads at or past off until release is closed.
type gatedSource struct {
	Source
	off     int64
	release chan struct{}
}

func (g gatedSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.off {
		<-g.release
	}
	return g.Source.ReadAt(p, off)
}

// TestVerifyDuringBackup checks that Verify and Repair leave alone the packs
// of a backup still running (they may be half written), and judge them once
// it has committed.
func TestVerifyDuringBackup(t *testing.T) {
	ctx := context.Background()
	r := openDamageRepo(t, 4, 2, nil)
	data := randomData(111, 2<<20)
	src := gatedSource{Source: newMemSource("vol", data), off: 24 << 16, release: make(chan struct{})}
	var wg sync.WaitGroup
	var cp *Checkpoint
	var berr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		cp, berr = r.Backup(ctx, src, BackupOptions{})
	}()
	defer func() { // never leave the backup blocked, even on failure
		select {
		case <-src.release:
		default:
			close(src.release)
		}
		wg.Wait()
	}()

	// Wait for the first pack (16 blocks of 1 MiB) to be fully written.
	var name string
	for deadline := time.Now().Add(10 * time.Second); name == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no pack written while the backup runs")
		}
		if packs := objectNames(t, r, "packs/"); len(packs) == 1 && complete(r, packs[0]) {
			name = packs[0]
		}
	}
	if err := os.Remove(shardPath(r, 0, name)); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx, VerifyOptions{Deep: true})
	if err != nil || !rep.OK || rep.Packs != 0 {
		t.Fatalf("verify during backup: %+v, %v; want the running backup's pack skipped", rep, err)
	}
	if fixed, err := r.Repair(ctx); err != nil || len(fixed.Rewritten) != 0 {
		t.Fatalf("repair during backup: %+v, %v; want nothing done", fixed, err)
	}

	close(src.release)
	wg.Wait()
	if berr != nil {
		t.Fatal(berr)
	}
	rep, err = r.Verify(ctx, VerifyOptions{})
	if err != nil || len(rep.DamagedShards) != 1 || rep.DamagedShards[0].Object != name {
		t.Fatalf("verify after backup: %+v, %v; want shard 0 of %s missing", rep, err, name)
	}
	if fixed, err := r.Repair(ctx); err != nil || len(fixed.Rewritten) != 1 {
		t.Fatalf("repair after backup: %+v, %v", fixed, err)
	}
	if got := restoreBytes(t, r, cp.ID, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("restore differs")
	}
}

// complete reports whether every shard of name is on disk.
func complete(r *Repository, name string) bool {
	for i := range r.stores {
		if _, err := os.Stat(shardPath(r, i, name)); err != nil {
			return false
		}
	}
	return true
}
