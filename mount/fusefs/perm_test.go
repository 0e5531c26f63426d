package fusefs

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPermissions stats every kind of node of a mounted tree: private
// by default (0400 files, 0500 directories, the mounter's group), and
// readable by one named group only with AllowOther.
func TestPermissions(t *testing.T) {
	r, _ := newRepo(t)
	backup(t, r, "/var/lib/vm1.img", mbrDisk(1, 4*mib, [2]int{mib, mib}))
	const group = 4242 // a group the mounting user is not in
	tests := []struct {
		name            string
		o               Options
		file, dir       fs.FileMode
		gid             uint32
		groupCanRead    bool
		notGroupCanRead bool
	}{
		{name: "private", o: Options{}, file: 0o400, dir: 0o500, gid: uint32(os.Getgid())},
		{name: "group", o: Options{AllowOther: true, GID: group}, file: 0o440, dir: 0o550, gid: group, groupCanRead: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mount(t, r, tc.o)
			root := s.Dir()
			paths := map[string]fs.FileMode{
				".":                                fs.ModeDir | tc.dir,
				"by-id":                            fs.ModeDir | tc.dir,
				"var_lib_vm1.img":                  fs.ModeDir | tc.dir,
				"var_lib_vm1.img/latest/":          fs.ModeDir | tc.dir, // the checkpoint directory
				"var_lib_vm1.img/latest/disk.raw":  tc.file,
				"var_lib_vm1.img/latest/part1.raw": tc.file,
				"var_lib_vm1.img/latest/info.json": tc.file,
			}
			for p, want := range paths {
				fi, err := os.Stat(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.Mode() != want || st.Uid != uint32(os.Getuid()) || st.Gid != tc.gid {
					t.Errorf("%s: mode %v, owner %d:%d; want %v, %d:%d", p, fi.Mode(), st.Uid, st.Gid, want, os.Getuid(), tc.gid)
				}
			}
			if os.Geteuid() != 0 {
				return // reading as another user needs root
			}
			// Let the other user reach the mount point; the mount itself
			// decides what it may read.
			for d := filepath.Dir(root); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			disk := filepath.Join(root, "var_lib_vm1.img", "latest", "disk.raw")
			for _, c := range []struct {
				gid  uint32
				want bool
			}{{group, tc.groupCanRead}, {group + 1, tc.notGroupCanRead}} {
				cmd := exec.Command("head", "-c", "1", disk)
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: c.gid}}
				out, err := cmd.CombinedOutput()
				if got := err == nil; got != c.want {
					t.Errorf("uid 65534, gid %d reads disk.raw: %v (%v: %s), want %v", c.gid, got, err, strings.TrimSpace(string(out)), c.want)
				}
			}
		})
	}
}
