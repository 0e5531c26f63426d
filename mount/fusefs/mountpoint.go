package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkMountPoint returns dir as an absolute path with symlinks resolved,
// or an error saying why it cannot be mounted on: missing, not a
// directory, already a mount point (or a dead FUSE mount).
func checkMountPoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: %w (create it with mkdir)", dir, ErrNoMountPoint)
	case errors.Is(err, syscall.ENOTCONN):
		// A FUSE server died without unmounting.
		return "", fmt.Errorf("%s: %w (a dead FUSE mount): unmount it with `fusermount3 -u %s`", dir, ErrAlreadyMounted, abs)
	case err != nil:
		return "", fmt.Errorf("mount point: %w", err)
	case !st.IsDir():
		return "", fmt.Errorf("%s: %w", dir, ErrNotDirectory)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fstype, mounted := mountedAt(abs)
	if !mounted {
		return abs, nil
	}
	how := "umount " + abs
	if strings.HasPrefix(fstype, "fuse") {
		how = "fusermount3 -u " + abs
	}
	return "", fmt.Errorf("%s: %w: unmount it with `%s`", dir, ErrAlreadyMounted, how)
}

// mountedAt reports whether path (absolute, symlinks resolved) is a mount
// point, and its file system type. It reads /proc/self/mountinfo; without
// it, a directory on another device than its parent counts as mounted.
func mountedAt(path string) (fstype string, ok bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", devDiffers(path)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != path {
			continue
		}
		ok = true
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
			}
		}
	}
	if sc.Err() != nil {
		return "", devDiffers(path)
	}
	return fstype, ok
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func devDiffers(path string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(path, &st) != nil || syscall.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return path != "/" && st.Dev != parent.Dev
}

// raiseReadAhead lets the kernel read ahead maxRead bytes on the mount: a
// FUSE mount starts with the default 128 KiB, whatever MaxReadAhead asks.
// Best effort: only root may write the setting.
func raiseReadAhead(dir string, logf func(string, ...any)) {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(maxRead>>10)), 0); err != nil && os.Geteuid() == 0 {
		logf("raise read-ahead: %v", err)
	}
}
