package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"cairn/internal/testenv"
)

// smallFS mounts a tmpfs of the given size (as "64m"); it needs root.
func smallFS(t *testing.T, size string) string { return testenv.SmallFS(t, size) }

// freeBytes is what statfs says an unprivileged writer may still use.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillFS writes path until the file system is full, leaving keep bytes free
// (0: none at all). It returns the file's size.
func fillFS(t *testing.T, dir, path string, keep int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := len(buf); n >= 512; {
		free := freeBytes(t, dir) - keep
		if free <= 0 {
			break
		}
		if int64(n) > free {
			n /= 2
			continue
		}
		if _, err := f.Write(buf[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				n /= 2
				continue
			}
			t.Fatal(err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkNoSpaceFailure requires a command to have failed cleanly for lack of
// space: exit 1 and a "no space left" error, not a signal or a Go panic.
func checkNoSpaceFailure(t *testing.T, r result) {
	t.Helper()
	for _, bad := range []string{"SIGBUS", "panic", "goroutine ", "fatal error", "unexpected fault"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("%q on stderr: the command crashed instead of failing:\n%s", bad, r)
		}
	}
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") {
		t.Fatalf("want exit 1 with a \"no space left\" error:\n%s", r)
	}
}

// TestFullDisk puts a repository on a small tmpfs and fills it. On the landed
// code backup, verify and prune then died with SIGBUS inside badger's
// memory-mapped files. Now every command that writes the index must fail
// with a "no space left on DIR" error, forget and prune must work and free
// space, and the checkpoints made before must still restore.
func TestFullDisk(t *testing.T) {
	fs := smallFS(t, "64m")
	e := &env{t: t, repo: filepath.Join(fs, "repo"), scratch: t.TempDir()}
	e.must(append([]string{"repo", "init"}, smallGeometry...)...)

	keep := filepath.Join(e.scratch, "keep.img")
	drop := filepath.Join(e.scratch, "drop.img")
	writeFile(t, keep, randomBytes(301, int(6*mib)))
	writeFile(t, drop, randomBytes(302, int(6*mib)))
	keepHash := fileHash(t, keep)
	keepCP := e.backup(keep)
	dropCP := e.backup(drop)

	filler := filepath.Join(fs, "filler")
	fillFS(t, fs, filler, 0)
	t.Logf("file system full: %d bytes free", freeBytes(t, fs))

	next := filepath.Join(e.scratch, "next.img")
	writeFile(t, next, randomBytes(303, int(4*mib)))
	t.Run("backup refused", func(t *testing.T) {
		r := e.run("backup", "--source", next)
		checkNoSpaceFailure(t, r)
		if !strings.Contains(r.stderr, "no space left on "+filepath.Join(e.repo, "index")) {
			t.Errorf("the error does not name the index directory:\n%s", r)
		}
	})
	t.Run("verify refused", func(t *testing.T) {
		checkNoSpaceFailure(t, e.run("verify"))
	})
	e.checkRestore(keepCP.ID, keepHash, "on a full disk")

	before := freeBytes(t, fs)
	e.must("forget", dropCP.ID)
	e.must("prune", "--grace", "0s")
	after := freeBytes(t, fs)
	if after <= before+4*mib {
		t.Fatalf("forget and prune on the full disk left %d bytes free (%d before): the dropped checkpoint's packs were not freed", after, before)
	}
	t.Logf("forget+prune on the full disk: %d → %d bytes free", before, after)
	if cps := e.checkpoints(); len(cps) != 1 || cps[0].ID != keepCP.ID {
		t.Fatalf("after forget: checkpoints %v, want only %s", cps, keepCP.ID)
	}
	e.checkRestore(keepCP.ID, keepHash, "after prune on a full disk")

	// A backup that fills the disk as it goes must stop with the same
	// error, and leave the repository usable.
	big := filepath.Join(e.scratch, "big.img")
	writeFile(t, big, randomBytes(304, int(24*mib)))
	t.Run("backup fills the disk", func(t *testing.T) {
		checkNoSpaceFailure(t, e.run("backup", "--source", big))
	})
	e.checkRestore(keepCP.ID, keepHash, "after a backup ran out of space")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.must("prune", "--grace", "0s") // what the failed backup left
	nextCP := e.backup(next)
	e.checkRestore(nextCP.ID, fileHash(t, next), "after space was freed")
	e.must("verify")
	e.checkRestore(keepCP.ID, keepHash, "at the end")
}
