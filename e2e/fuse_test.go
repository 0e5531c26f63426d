package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestFUSEMount mounts a repository with `cairn mount` and reads it the
// ways an operator would: whole volumes by hash, a partition loop-mounted
// and through debugfs, many readers at once; then checks that a busy mount
// point is refused and that SIGTERM unmounts cleanly.
func TestFUSEMount(t *testing.T) {
	fuseRequire(t, "sfdisk", "mkfs.ext4", "debugfs", "mount", "umount")
	e := newRepo(t, repoOpts{})
	files := map[string][]byte{
		"hello.txt":    []byte("hello through FUSE\n"),
		"data.bin":     randomBytes(11, int(3*mib+4321)),
		"dir/deep.txt": bytes.Repeat([]byte("deep "), 20000),
	}
	root := fuseTree(t, files)
	disk := filepath.Join(e.scratch, "vm1.img")
	fusePartitionedDisk(t, disk, "gpt", root)
	cpDisk := e.backup(disk)

	random := filepath.Join(e.scratch, "random.img")
	data := randomBytes(12, int(24*mib+777))
	clear(data[8*mib : 12*mib]) // a hole
	writeFile(t, random, data)
	cpRandom := e.backup(random)

	s := fuseStart(t, e)
	srcDir := filepath.Join(s.dir, strings.ReplaceAll(strings.TrimPrefix(disk, "/"), "/", "_"))
	cpDir := filepath.Join(srcDir, "latest")

	t.Run("layout", func(t *testing.T) {
		names, err := os.ReadDir(srcDir)
		if err != nil {
			t.Fatalf("source directory: %v", err)
		}
		wantDir := cpDisk.CreatedAt.UTC().Format("2006-01-02T15-04-05Z") + "_" + cpDisk.ID[24:32]
		if len(names) != 2 || names[0].Name() != wantDir || names[1].Name() != "latest" {
			t.Fatalf("source directory lists %v, want [%s latest]", names, wantDir)
		}
		if l, err := os.Readlink(filepath.Join(s.dir, "by-id", cpDisk.ID)); err != nil || !strings.HasSuffix(l, "/"+wantDir) {
			t.Errorf("by-id/%s -> %q (%v)", cpDisk.ID, l, err)
		}
		st, err := os.Stat(filepath.Join(cpDir, "disk.raw"))
		if err != nil || st.Size() != fuseDiskSize || !st.ModTime().Equal(cpDisk.CreatedAt) {
			t.Errorf("disk.raw: %v, size %d, mtime %v; want %d, %v", err, st.Size(), st.ModTime(), fuseDiskSize, cpDisk.CreatedAt)
		}
		var in struct {
			Scheme string `json:"partition_scheme"`
			Files  []struct {
				File         string
				Offset, Size int64
			}
		}
		b, err := os.ReadFile(filepath.Join(cpDir, "info.json"))
		if err != nil || json.Unmarshal(b, &in) != nil {
			t.Fatalf("info.json: %v\n%s", err, b)
		}
		if in.Scheme != "gpt" || len(in.Files) != 2 || in.Files[1].File != "part1.raw" || in.Files[1].Offset != mib || in.Files[1].Size != 64*mib {
			t.Errorf("info.json: %+v", in)
		}
	})

	t.Run("sha256", func(t *testing.T) {
		for src, cp := range map[string]checkpoint{disk: cpDisk, random: cpRandom} {
			got := fileHash(t, filepath.Join(s.dir, "by-id", cp.ID, "disk.raw"))
			if want := fileHash(t, src); got != want {
				t.Errorf("disk.raw of %s has sha256 %s, source %s", src, got, want)
			}
		}
	})

	t.Run("loop-mount", func(t *testing.T) {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "loop,ro,noload", filepath.Join(cpDir, "part1.raw"), mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount -o loop,ro,noload part1.raw: %v\n%s", err, out)
		}
		got := treeDigest(t, mnt)
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
		want := treeDigest(t, root)
		if len(got) != len(want) {
			t.Errorf("loop-mounted partition holds %d files, the source tree %d", len(got), len(want))
		}
		for name, h := range want {
			if got[name] != h {
				t.Errorf("%s differs in the loop-mounted partition", name)
			}
		}
	})

	t.Run("debugfs", func(t *testing.T) {
		for _, name := range []string{"hello.txt", "dir/deep.txt"} {
			out, err := exec.Command("debugfs", "-R", "cat /"+name, filepath.Join(cpDir, "part1.raw")).Output()
			if err != nil || !bytes.Equal(out, files[name]) {
				t.Errorf("debugfs cat /%s: %v, %d bytes, want %d", name, err, len(out), len(files[name]))
			}
		}
	})

	t.Run("parallel-readers", func(t *testing.T) {
		f, err := os.Open(filepath.Join(s.dir, "by-id", cpRandom.ID, "disk.raw"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 99))
				buf := make([]byte, 512*kib)
				for range 150 {
					off := rng.Int64N(int64(len(data)))
					p := buf[:1+rng.IntN(len(buf))]
					n, err := f.ReadAt(p, off)
					if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) || int64(n) != min(int64(len(p)), int64(len(data))-off) {
						t.Errorf("reader %d: %d bytes at %d: %v or wrong data", g, n, off, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("busy", func(t *testing.T) {
		r := e.mustFail("mount", s.dir)
		if !strings.Contains(r.stderr, "already mounted") || !strings.Contains(r.stderr, "fusermount3 -u "+s.dir) {
			t.Errorf("mount on a mount point: want 'already mounted' and the fusermount3 hint:\n%s", r)
		}
		for _, dir := range []string{filepath.Join(e.scratch, "missing"), random} {
			if r := e.mustFail("mount", dir); r.code != 1 {
				t.Errorf("mount on %s: exit %d, want 1", dir, r.code)
			}
		}
	})

	t.Run("sigterm", func(t *testing.T) {
		s.stop(t)
		if !strings.Contains(s.stderr.String(), "unmounted") {
			t.Errorf("no 'unmounted' note after SIGTERM:\n%s", s.stderr)
		}
	})
}
