package fusefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func readDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestTree(t *testing.T) {
	r, clk := newRepo(t)
	disk1 := mbrDisk(1, 4*mib, [2]int{mib, mib}, [2]int{2 * mib, mib / 2})
	cp1 := backup(t, r, "/var/lib/vm1.img", disk1)
	clk.set(clk.now().Add(90 * time.Minute))
	disk2 := bytes.Clone(disk1)
	copy(disk2[mib+100:], "changed")
	cp2 := backup(t, r, "/var/lib/vm1.img", disk2)
	other := randomBytes(2, 300*kib+7)
	cp3 := backup(t, r, "/dev/vg0/db", other)

	s := mount(t, r, Options{})
	root := s.Dir()
	if got, want := readDir(t, root), []string{"by-id", "dev_vg0_db", "var_lib_vm1.img"}; !slices.Equal(got, want) {
		t.Fatalf("root lists %q, want %q", got, want)
	}
	src := filepath.Join(root, "var_lib_vm1.img")
	d1 := "2025-06-01T10-00-00Z_" + cp1.ID[24:32]
	d2 := "2025-06-01T11-30-00Z_" + cp2.ID[24:32]
	if got, want := readDir(t, src), []string{d1, d2, "latest"}; !slices.Equal(got, want) {
		t.Fatalf("%s lists %q, want %q", src, got, want)
	}
	if l, err := os.Readlink(filepath.Join(src, "latest")); err != nil || l != d2 {
		t.Fatalf("latest -> %q, %v; want %q", l, err, d2)
	}
	if l, err := os.Readlink(filepath.Join(root, "by-id", cp1.ID)); err != nil || l != "../var_lib_vm1.img/"+d1 {
		t.Fatalf("by-id link -> %q, %v", l, err)
	}
	if got := readDir(t, filepath.Join(root, "by-id")); len(got) != 3 {
		t.Fatalf("by-id lists %q", got)
	}

	dir := filepath.Join(root, "by-id", cp2.ID) // through the symlink
	if got, want := readDir(t, dir), []string{"disk.raw", "info.json", "part1.raw", "part2.raw"}; !slices.Equal(got, want) {
		t.Fatalf("checkpoint dir lists %q, want %q", got, want)
	}
	for name, want := range map[string][]byte{
		"disk.raw":  disk2,
		"part1.raw": disk2[mib : 2*mib],
		"part2.raw": disk2[2*mib : 2*mib+mib/2],
	} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(want)) || !st.ModTime().Equal(cp2.CreatedAt) || st.Mode() != 0o400 {
			t.Errorf("%s: size %d, mtime %v, mode %v; want %d, %v, -r--------", name, st.Size(), st.ModTime(), st.Mode(), len(want), cp2.CreatedAt)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (%v)", name, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(root, "dev_vg0_db", "latest", "disk.raw")); err != nil || !bytes.Equal(got, other) {
		t.Errorf("dev_vg0_db/latest/disk.raw differs (%v)", err)
	}
	if names := readDir(t, filepath.Join(root, "dev_vg0_db", "latest")); !slices.Equal(names, []string{"disk.raw", "info.json"}) {
		t.Errorf("no partition table, yet %q", names)
	}
	_ = cp3

	var in struct {
		Checkpoint struct{ ID, Source string }
		Scheme     string `json:"partition_scheme"`
		Files      []struct {
			File         string
			Number       int
			Offset, Size int64
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil || json.Unmarshal(b, &in) != nil {
		t.Fatalf("info.json: %v\n%s", err, b)
	}
	if in.Checkpoint.ID != cp2.ID || in.Scheme != "mbr" || len(in.Files) != 3 ||
		in.Files[1].File != "part1.raw" || in.Files[1].Offset != mib || in.Files[2].Size != mib/2 || in.Files[2].Number != 2 {
		t.Errorf("info.json: %+v", in)
	}

	for _, p := range []string{filepath.Join(root, "nope"), filepath.Join(src, "nope"), filepath.Join(dir, "part3.raw"), filepath.Join(root, "by-id", "nope")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s: %v, want not exist", p, err)
		}
	}
	if f, err := os.OpenFile(filepath.Join(dir, "disk.raw"), os.O_RDWR, 0); err == nil {
		f.Close()
		t.Error("opened disk.raw for writing")
	} else if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
		t.Errorf("open for writing: %v, want EROFS or EACCES", err)
	}
	if err := os.WriteFile(filepath.Join(root, "new"), nil, 0o644); err == nil {
		t.Error("created a file")
	}
}

func TestNewCheckpointsAppear(t *testing.T) {
	r, clk := newRepo(t)
	backup(t, r, "/a", randomBytes(1, 100*kib))
	s := mount(t, r, Options{Refresh: 10 * time.Millisecond})
	src := filepath.Join(s.Dir(), "a")
	if n := len(readDir(t, src)); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	first, _ := os.Readlink(filepath.Join(src, "latest"))

	clk.set(clk.now().Add(time.Hour))
	cp := backup(t, r, "/a", randomBytes(2, 100*kib))
	backup(t, r, "/b", randomBytes(3, 10*kib))
	time.Sleep(20 * time.Millisecond)
	if n := len(readDir(t, src)); n != 3 {
		t.Fatalf("after a new backup: %d entries, want 3", n)
	}
	if got := readDir(t, s.Dir()); !slices.Contains(got, "b") {
		t.Fatalf("new source not listed: %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(src, "latest")); l == first || l != "2025-06-01T11-00-00Z_"+cp.ID[24:32] {
		t.Fatalf("latest -> %q after a new backup (was %q)", l, first)
	}
	// The link follows new checkpoints without a listing in between.
	clk.set(clk.now().Add(time.Hour))
	cp = backup(t, r, "/a", randomBytes(5, 100*kib))
	time.Sleep(1100 * time.Millisecond) // the link's attribute timeout, and the refresh interval
	if l, _ := os.Readlink(filepath.Join(src, "latest")); l != "2025-06-01T12-00-00Z_"+cp.ID[24:32] {
		t.Fatalf("latest -> %q, want the newest checkpoint", l)
	}
	// A lookup of a name not yet listed finds it too.
	cp = backup(t, r, "/a", randomBytes(4, 100*kib))
	time.Sleep(20 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(s.Dir(), "by-id", cp.ID, "disk.raw")); err != nil {
		t.Fatalf("new checkpoint by ID: %v", err)
	}
}

func TestReadErrorIsEIO(t *testing.T) {
	r, _ := newRepo(t)
	cp := backup(t, r, "/a", randomBytes(1, 512*kib))
	packs, _ := filepath.Glob(filepath.Join(r.Dir(), "shards", "*", "packs", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no pack files found")
	}
	for _, p := range packs {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	var logged bytes.Buffer
	s := mount(t, r, Options{Log: func(f string, a ...any) { logged.WriteString(f) }})
	_, err := os.ReadFile(filepath.Join(s.Dir(), "by-id", cp.ID, "disk.raw"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a checkpoint whose packs are gone: %v, want EIO", err)
	}
}

func TestMountPointErrors(t *testing.T) {
	r, _ := newRepo(t)
	backup(t, r, "/a", randomBytes(1, 10*kib))
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Mount(t.Context(), r, filepath.Join(dir, "missing"), Options{}); !errors.Is(err, ErrNoMountPoint) {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := Mount(t.Context(), r, file, Options{}); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("file: %v", err)
	}
	s := mount(t, r, Options{})
	_, err := Mount(t.Context(), r, s.Dir(), Options{})
	if !errors.Is(err, ErrAlreadyMounted) || !bytes.Contains([]byte(err.Error()), []byte("fusermount3 -u "+s.Dir())) {
		t.Errorf("mounted twice: %v", err)
	}
	// Unmount refuses while a file is open; Wait returns after unmounting.
	f, err := os.Open(filepath.Join(s.Dir(), "a", "latest", "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount(); err == nil {
		t.Error("unmounted with a file open")
	}
	f.Close()
	unmount(t, s)
	if _, ok := mountedAt(s.Dir()); ok {
		t.Error("still mounted after Unmount")
	}
}
