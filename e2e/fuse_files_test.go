package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFilesRestore backs up an MBR-partitioned disk twice with a file
// changed in between, then gets files out of each checkpoint with
// `cairn files ls|cat|restore`, checking that every run leaves no mount,
// loop device or temporary directory behind, also when interrupted.
func TestFilesRestore(t *testing.T) {
	fuseRequire(t, "sfdisk", "mkfs.ext4", "mount", "umount", "losetup")
	e := newRepo(t, repoOpts{})
	tmp := t.TempDir() // TMPDIR of every cairn files run
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	v1 := map[string][]byte{
		"hello.txt":     []byte("old content\n"),
		"dir/a.txt":     []byte("a"),
		"dir/sub/b.bin": randomBytes(21, 200*1024),
		"big.bin":       randomBytes(22, int(12*mib)),
	}
	root := fuseTree(t, v1)
	if err := os.Chmod(filepath.Join(root, "dir", "a.txt"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "dir", "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dir/a.txt", "dir/sub", "dir"} {
		if err := os.Chtimes(filepath.Join(root, p), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(e.scratch, "vm.img")
	fusePartitionedDisk(t, disk, "dos", root)
	old := e.backup(disk)
	writeFile(t, filepath.Join(root, "hello.txt"), []byte("new content, longer\n"))
	fuseWriteExt4(t, disk, root)
	cur := e.backup(disk)

	files := func(args ...string) result {
		t.Helper()
		r := fuseFilesRun(t, e, tmp, args...)
		fuseCheckClean(t, tmp)
		return r
	}
	must := func(args ...string) string {
		t.Helper()
		r := files(args...)
		if r.code != 0 {
			t.Fatalf("command failed:\n%s", r)
		}
		return r.stdout
	}

	t.Run("restore-versions", func(t *testing.T) {
		for cp, want := range map[string]string{old.ID: "old content\n", cur.ID[:13]: "new content, longer\n"} {
			to := filepath.Join(t.TempDir(), "hello.txt")
			must("files", "restore", cp, "/hello.txt", "--to", to)
			if got, err := os.ReadFile(to); err != nil || string(got) != want {
				t.Errorf("hello.txt of %s: %q (%v), want %q", cp, got, err, want)
			}
		}
	})

	t.Run("restore-tree", func(t *testing.T) {
		to := t.TempDir()
		out := must("files", "restore", cur.ID+":1", "/dir", "--to", to, "--json")
		var st struct{ Files, Dirs, Symlinks int }
		if err := jsonUnmarshal(out, &st); err != nil || st.Files != 2 || st.Dirs != 2 || st.Symlinks != 1 {
			t.Errorf("restore --json: %+v (%v)\n%s", st, err, out)
		}
		got, want := treeDigest(t, filepath.Join(to, "dir")), treeDigest(t, filepath.Join(root, "dir"))
		if len(got) != len(want) || got["a.txt"] != want["a.txt"] || got["sub/b.bin"] != want["sub/b.bin"] {
			t.Errorf("restored tree %v, want %v", got, want)
		}
		fi, err := os.Stat(filepath.Join(to, "dir", "a.txt"))
		if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
			t.Errorf("a.txt: %v, mode %v, mtime %v; want 0640, %v", err, fi.Mode(), fi.ModTime(), mtime)
		}
		if fi, err := os.Stat(filepath.Join(to, "dir")); err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("dir mtime: %v (%v), want %v", fi.ModTime(), err, mtime)
		}
		if l, err := os.Readlink(filepath.Join(to, "dir", "link")); err != nil || l != "a.txt" {
			t.Errorf("link -> %q (%v)", l, err)
		}
		r := files("files", "restore", cur.ID, "/dir/a.txt", "--to", filepath.Join(to, "dir", "a.txt"))
		if r.code == 0 {
			t.Errorf("restore over an existing file succeeded")
		}
	})

	t.Run("ls", func(t *testing.T) {
		out := must("files", "ls", cur.ID, "/")
		for _, name := range []string{"hello.txt", "dir", "big.bin", "lost+found"} {
			if !strings.Contains(out, name) {
				t.Errorf("ls / lacks %s:\n%s", name, out)
			}
		}
		var ents []struct {
			Name, Type, Mode string
			Size             int64
			MTime            time.Time
		}
		if err := jsonUnmarshal(must("files", "ls", cur.ID, "/dir", "--json"), &ents); err != nil || len(ents) != 3 {
			t.Fatalf("ls --json: %v, %+v", err, ents)
		}
		if a := ents[0]; a.Name != "a.txt" || a.Type != "file" || a.Mode != "0640" || a.Size != 1 || !a.MTime.Equal(mtime) {
			t.Errorf("ls --json entry: %+v", a)
		}
		if ents[1].Type != "symlink" || ents[2].Type != "dir" {
			t.Errorf("ls --json types: %+v", ents)
		}
	})

	t.Run("cat", func(t *testing.T) {
		if out := must("files", "cat", old.ID, "/hello.txt"); out != "old content\n" {
			t.Errorf("cat: %q", out)
		}
		for _, args := range [][]string{
			{"files", "cat", old.ID + ":2", "/hello.txt"}, // no such partition
			{"files", "cat", old.ID, "/nope"},
			{"files", "cat", old.ID, "/dir"},
			{"files", "cat", old.ID + ":disk", "/hello.txt"}, // no file system on the whole disk
		} {
			r := files(args...)
			if r.code == 0 {
				t.Errorf("%v succeeded", args)
			}
			checkErrorLine(t, r)
		}
	})

	t.Run("interrupt", func(t *testing.T) {
		cmd := e.command(context.Background(), "files", "cat", cur.ID, "/big.bin")
		cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once output flows, everything is mounted; then interrupt.
		if _, err := io.ReadFull(stdout, make([]byte, 64*1024)); err != nil {
			t.Fatalf("no output from files cat: %v", err)
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("interrupted files cat: %v, want exit 130", err)
		}
		fuseCheckClean(t, tmp)
	})
}

// fuseFilesRun runs cairn with TMPDIR=tmp, so that its temporary
// directories can be checked.
func fuseFilesRun(t *testing.T, e *env, tmp string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("cairn %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// fuseCheckClean fails unless cairn files left nothing behind: no
// directory in tmp, nothing mounted under it, no loop device on a file in it.
func fuseCheckClean(t *testing.T, tmp string) {
	t.Helper()
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("cairn files left %d entries in its TMPDIR (%s…)", len(ents), ents[0].Name())
	}
	info, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(info, []byte(tmp)) {
		t.Errorf("cairn files left a mount under %s", tmp)
	}
	out, _ := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, tmp) {
			t.Errorf("cairn files left a loop device: %s", line)
			_ = exec.Command("losetup", "-d", strings.Fields(line)[0]).Run()
		}
	}
}
