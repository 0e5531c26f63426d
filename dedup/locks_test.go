package dedup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/dedup/pack"
)

// putForeignLock writes a lock as another process would.
func putForeignLock(t *testing.T, r *Repository, name, kind string, refreshed time.Time) {
	t.Helper()
	b, _ := json.Marshal(lockInfo{Kind: kind, Host: "elsewhere", PID: 4242, Started: refreshed, Refreshed: refreshed})
	for _, s := range r.stores {
		if err := s.Put(context.Background(), lockPrefix+name, b); err != nil {
			t.Fatal(err)
		}
	}
}

// forgetAll forgets every checkpoint of r.
func forgetAll(t *testing.T, r *Repository, ids ...string) {
	t.Helper()
	if _, err := r.Forget(context.Background(), ForgetPolicy{IDs: ids}); err != nil {
		t.Fatal(err)
	}
}

func TestPruneDefersToForeignBackup(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	cp := backup(t, r, randomData(1, 20*testBS))
	forgetAll(t, r, cp.ID)
	putForeignLock(t, r, "theirs", lockBackup, time.Now())

	rep, err := r.Prune(ctx, PruneOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted != 0 || rep.PacksLeft == 0 || !strings.Contains(rep.BlockedBy, "backing up on elsewhere pid 4242") {
		t.Fatalf("prune with a live foreign backup: deleted %d, left %d, blocked by %q; want 0, >0, the backup",
			rep.PacksDeleted, rep.PacksLeft, rep.BlockedBy)
	}
	if m, _ := r.readPruneMarker(ctx); m != nil {
		t.Errorf("a prune that deleted nothing wrote %s", pruneMarkerName)
	}
	if locks, _ := r.otherLocks(ctx, 1); len(locks) != 1 {
		t.Errorf("locks after a blocked prune: %v, want only the foreign one", locks)
	}

	// Stale: the process died. Prune proceeds and removes the lock.
	putForeignLock(t, r, "theirs", lockBackup, time.Now().Add(-2*lockStaleAfter))
	rep, err = r.Prune(ctx, PruneOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted == 0 || rep.BlockedBy != "" {
		t.Fatalf("prune with a stale foreign lock: deleted %d, blocked by %q", rep.PacksDeleted, rep.BlockedBy)
	}
	if locks, _ := r.otherLocks(ctx, 1); len(locks) != 0 {
		t.Errorf("stale lock not removed: %v", locks)
	}
	var m pruneMarker
	if b, err := r.readPruneMarker(ctx); err != nil || json.Unmarshal(b, &m) != nil || m.Finished.IsZero() {
		t.Errorf("after prune, %s = %s (%v): want an end marker", pruneMarkerName, b, err)
	}
	if !bytes.Equal(r.idx.SeenPrune(), mustMarker(t, r)) {
		t.Error("the pruning index does not record its own prune as seen")
	}
}

func mustMarker(t *testing.T, r *Repository) []byte {
	t.Helper()
	m, err := r.readPruneMarker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// secondHandle opens r's shard stores with an index of its own, as a second
// appliance connected to the same stores would.
func secondHandle(t *testing.T, r *Repository) *Repository {
	t.Helper()
	r2, err := Open(context.Background(), r.Dir(), Options{NoSync: true, IndexDir: filepath.Join(t.TempDir(), "index2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Close() })
	return r2
}

// A prune through another index deletes packs this index still lists: the
// next backup must notice and store those chunks again instead of
// referencing deleted packs.
func TestBackupSyncsIndexAfterForeignPrune(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	data := randomData(2, 20*testBS)
	cp := backup(t, r, data)
	r2 := secondHandle(t, r)
	forgetAll(t, r2, cp.ID)
	if rep, err := r2.Prune(ctx, PruneOptions{Grace: -1}); err != nil || rep.PacksDeleted == 0 {
		t.Fatalf("prune through the second index: %+v, %v", rep, err)
	}
	cp2 := backup(t, r, data)
	if cp2.NewBytes != int64(len(data)) {
		t.Errorf("backup after a foreign prune stored %d new bytes, want all %d again", cp2.NewBytes, len(data))
	}
	restoreFresh(t, r, cp2.ID, data)
	if !bytes.Equal(r.idx.SeenPrune(), mustMarker(t, r)) {
		t.Error("index not marked in sync after the backup synced it")
	}
}

// blockingSource stops at its first read until release is closed.
type blockingSource struct {
	Source
	started chan struct{}
	release chan struct{}
	first   bool
}

func (b *blockingSource) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 && !b.first {
		b.first = true
		close(b.started)
		<-b.release
	}
	return b.Source.ReadAt(p, off)
}

// A prune in another process that runs while a backup is underway and
// deletes packs the backup dedups against must make the commit fail, not
// commit a checkpoint with holes.
func TestCommitRefusesPacksDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	data := randomData(3, 20*testBS)
	cp := backup(t, r, data)
	r2 := secondHandle(t, r)

	src := &blockingSource{Source: newMemSource("vol", data), started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.Backup(ctx, src, BackupOptions{Workers: 1})
		done <- err
	}()
	<-src.started
	// The lock of r's backup has this process's pid, so r2 takes it for
	// its own and goes ahead, as a prune that missed the lock would.
	forgetAll(t, r2, cp.ID)
	if rep, err := r2.Prune(ctx, PruneOptions{Grace: -1}); err != nil || rep.PacksDeleted == 0 {
		t.Fatalf("prune through the second index: %+v, %v", rep, err)
	}
	close(src.release)
	err := <-done
	if !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("backup across a foreign prune: %v, want ErrChunkNotFound", err)
	}
	cps, _ := r.Checkpoints(ctx)
	if len(cps) != 0 {
		t.Fatalf("checkpoints after the refused commit: %d, want 0", len(cps))
	}
	// Run again, it stores the chunks anew.
	cp2 := backup(t, r, data)
	restoreFresh(t, r, cp2.ID, data)
}

var _ io.ReaderAt = (*blockingSource)(nil)

// A lock of this host whose process is gone is not live, however fresh:
// a prune right after a killed backup need not wait for it to go stale.
func TestLockOfDeadLocalProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	host, _ := os.Hostname()
	now := time.Now()
	dead := lockInfo{Kind: lockBackup, Host: host, PID: cmd.Process.Pid, Refreshed: now}
	if dead.live(now) {
		t.Errorf("lock of exited pid %d on this host counts as live", dead.PID)
	}
	alive := lockInfo{Kind: lockBackup, Host: host, PID: os.Getppid(), Refreshed: now}
	if !alive.live(now) {
		t.Error("lock of a running local process counts as stale")
	}
	if (lockInfo{Host: "elsewhere", PID: cmd.Process.Pid, Refreshed: now}).live(now.Add(lockStaleAfter)) {
		t.Error("a lock not refreshed for lockStaleAfter counts as live")
	}
}

// A prune killed after it compacted a pack (its live chunks copied and
// indexed in a new pack, the old pack deleted) but before it finished
// leaves the parent checkpoint's pack hints pointing at the deleted pack,
// and the next backup must check the packs it inherits. The incremental
// must point those chunks at the pack the index names and commit; on the
// landed code it refused on every retry until a --full backup.
func TestIncrementalAfterKilledCompaction(t *testing.T) {
	ctx := context.Background()
	r := testRepository(t)
	keep := randomData(4, 2*testBS)
	mixed := append(append([]byte{}, keep...), randomData(5, 18*testBS)...)
	dead := backup(t, r, mixed)  // one pack, 20 chunks
	parent := backup(t, r, keep) // the first 2 of them, deduplicated
	forgetAll(t, r, dead.ID)
	rep, err := r.Prune(ctx, PruneOptions{Grace: -1})
	if err != nil || rep.PacksCompacted == 0 {
		t.Fatalf("prune: %+v, %v; want a pack compacted", rep, err)
	}
	// What a prune killed mid-way leaves: a start marker this index has
	// not seen finish, and the dead prune's lock.
	if err := r.writePruneMarker(ctx, time.Now(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	putForeignLock(t, r, "killed", lockPrune, time.Now().Add(-2*lockStaleAfter))
	next := append([]byte{}, keep...)
	copy(next[10:], "changed")
	cp, err := r.Backup(ctx, newMemSource("vol", next), BackupOptions{Parent: parent.ID, Changed: []Extent{{Off: 10, Len: 7}}})
	if err != nil {
		t.Fatalf("incremental after a killed compaction: %v", err)
	}
	if cp.NewBytes >= int64(len(next)) {
		t.Fatalf("incremental stored %d new bytes: the unchanged block was not taken from the parent", cp.NewBytes)
	}
	restoreFresh(t, r, cp.ID, next)
	restoreFresh(t, r, parent.ID, keep)
	_, bm, err := r.LoadCheckpoint(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bm.Packs {
		if r.shardCount(ctx, pack.Name(p)) < r.cfg.DataShards {
			t.Fatalf("committed block map names deleted pack %s", p)
		}
	}
}
