package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"
	"time"
)

// fileEntry is one line of `cairn files ls`.
type fileEntry struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"` // file, dir, symlink, device, fifo, socket
	Mode   string    `json:"mode"` // permission bits in octal, with setuid/setgid/sticky
	Size   int64     `json:"size"`
	MTime  time.Time `json:"mtime"`
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Target string    `json:"target,omitempty"` // of a symlink

	mode fs.FileMode
}

func newFileEntry(fsys *os.Root, rel string, fi fs.FileInfo) fileEntry {
	e := fileEntry{Name: fi.Name(), Size: fi.Size(), MTime: fi.ModTime().UTC(), Mode: fmt.Sprintf("%04o", unixPerm(fi.Mode())), mode: fi.Mode()}
	switch m := fi.Mode(); {
	case m.IsDir():
		e.Type = "dir"
	case m.IsRegular():
		e.Type = "file"
	case m&fs.ModeSymlink != 0:
		e.Type = "symlink"
		e.Target, _ = fsys.Readlink(rel)
	case m&fs.ModeDevice != 0:
		e.Type = "device"
	case m&fs.ModeNamedPipe != 0:
		e.Type = "fifo"
	case m&fs.ModeSocket != 0:
		e.Type = "socket"
	default:
		e.Type = "other"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = st.Uid, st.Gid
	}
	return e
}

// unixPerm is the permission bits of m as chmod takes them.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= syscall.S_ISVTX
	}
	return p
}

// lsMode renders a mode the way ls -l does: "drwxr-xr-x", "lrwxrwxrwx".
func lsMode(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	for i, c := range "rwxrwxrwx" {
		if m.Perm()&(1<<(8-i)) != 0 {
			b[i+1] = byte(c)
		}
	}
	special := func(set bool, i int, lower, upper byte) {
		if set {
			if b[i] == 'x' {
				b[i] = lower
			} else {
				b[i] = upper
			}
		}
	}
	special(m&fs.ModeSetuid != 0, 3, 's', 'S')
	special(m&fs.ModeSetgid != 0, 6, 's', 'S')
	special(m&fs.ModeSticky != 0, 9, 't', 'T')
	return string(b)
}

// listFiles prints p (a directory's entries, or p itself) like ls -la.
func (a *app) listFiles(fsys *os.Root, p string) error {
	rel := relPath(p)
	fi, err := fsys.Lstat(rel)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	var entries []fileEntry
	if fi.IsDir() {
		d, err := fsys.Open(rel)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		infos, err := d.Readdir(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("list %s: %w", p, err)
		}
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
		for _, info := range infos {
			entries = append(entries, newFileEntry(fsys, path.Join(rel, info.Name()), info))
		}
	} else {
		e := newFileEntry(fsys, rel, fi)
		e.Name = p
		entries = append(entries, e)
	}
	if a.jsonOut {
		if entries == nil {
			entries = []fileEntry{}
		}
		return writeJSON(a.stdout, entries)
	}
	tw := newTable(a.stdout)
	for _, e := range entries {
		name := e.Name
		if e.Target != "" {
			name += " -> " + e.Target
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", lsMode(e.mode), e.UID, e.GID, e.Size, e.MTime.Local().Format("2006-01-02 15:04"), name)
	}
	return tw.Flush()
}

// catFile copies the regular file p to w.
func catFile(ctx context.Context, fsys *os.Root, p string, w io.Writer) error {
	f, err := fsys.Open(relPath(p))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", p)
	}
	if _, err := io.Copy(w, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// ctxReader stops a copy once ctx ends (Ctrl-C).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
