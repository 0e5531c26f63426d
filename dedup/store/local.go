package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// tempPrefix starts the base name of every file a Put is still writing.
// CheckName rejects components starting with '.', so no object can collide
// with one, and List can skip them by name alone.
const tempPrefix = ".tmp-"

// LocalOptions configures a Local store.
type LocalOptions struct {
	// NoSync skips fsync of files and directories. Put is then atomic but
	// not durable: a power loss may lose recent objects. Meant for tests and
	// throwaway repositories.
	NoSync bool
}

// Local is a Store on a directory of a local filesystem. Object "a/b/c" is
// the file <dir>/a/b/c. Files and directories are created private (0600,
// 0700) because they hold backup data.
type Local struct {
	dir    string // as given to OpenLocal, for messages
	root   string // dir, absolute with symlinks resolved
	noSync bool

	// synced holds relative directories known to exist durably, so Put
	// fsyncs the parent of a directory once per process, not once per object.
	synced sync.Map
}

var _ Store = (*Local)(nil)

// OpenLocal opens the store in dir, creating dir if it is missing.
func OpenLocal(dir string, opts LocalOptions) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		// Resolve symlinks so that walking the root walks the real tree
		// instead of reporting the link itself.
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	l := &Local{dir: dir, root: abs, noSync: opts.NoSync}
	if !l.noSync {
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("open local store %s: %w", dir, err)
		}
	}
	return l, nil
}

// Dir returns the directory the store was opened on.
func (l *Local) Dir() string { return l.dir }

// String implements Store.
func (l *Local) String() string { return "local:" + l.dir }

// Close implements Store. Local holds no resources between calls.
func (l *Local) Close() error { return nil }

// path validates name and returns its file path.
func (l *Local) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(name)), nil
}

// Put implements Store: it writes a temp file next to the target, fsyncs it,
// renames it over the target and fsyncs the directory, so that a crash at
// any point leaves either the old object or the new one.
func (l *Local) Put(ctx context.Context, name string, data []byte) error {
	if err := l.put(ctx, name, data); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

func (l *Local) put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	target, err := l.path(name)
	if err != nil {
		return err
	}
	rel := ""
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		rel = name[:i]
	}
	if err := l.mkdirs(rel); err != nil {
		return err
	}
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed the directory behind our back; forget what we
		// knew and recreate it once.
		l.synced.Clear()
		if err := l.mkdirs(rel); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, tempPrefix+"*")
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && !l.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if l.noSync {
		return nil
	}
	return syncDir(dir)
}

// mkdirs creates the relative directory rel and, unless NoSync, fsyncs the
// parent of each level so the new directory entries survive a crash too.
func (l *Local) mkdirs(rel string) error {
	if rel == "" {
		return nil
	}
	if _, ok := l.synced.Load(rel); ok {
		return nil
	}
	if l.noSync {
		if err := os.MkdirAll(filepath.Join(l.root, filepath.FromSlash(rel)), 0o700); err != nil {
			return err
		}
		l.synced.Store(rel, struct{}{})
		return nil
	}
	parent := l.root
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		level := rel[:i]
		p := filepath.Join(l.root, filepath.FromSlash(level))
		if _, ok := l.synced.Load(level); !ok {
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			// Sync even if the directory existed: another Put may have
			// created it and not yet synced its parent.
			if err := syncDir(parent); err != nil {
				return err
			}
			l.synced.Store(level, struct{}{})
		}
		parent = p
	}
	return nil
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems cannot fsync directories; there is nothing better
	// to do there than what they already do.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// isNotExist reports whether err means the object is not there. ENOTDIR
// covers a name whose parent "directory" is itself an object.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// open opens an object for reading, mapping absence and directories to
// ErrNotFound.
func (l *Local) open(ctx context.Context, name string) (*os.File, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	p, err := l.path(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if isNotExist(err) {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = ErrNotFound
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// MaxGetSize is the largest object Local.Get reads whole. Whole-object reads
// are for small objects (configs, locks); shards are read in ranges. A file
// beyond it is damage, maybe a sparse file claiming terabytes, and sizing a
// buffer by it would crash the process instead of reporting the object.
const MaxGetSize = 256 << 20

// Get implements Store. Objects larger than MaxGetSize are refused.
func (l *Local) Get(ctx context.Context, name string) ([]byte, error) {
	f, size, err := l.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	defer f.Close()
	if size > MaxGetSize {
		return nil, fmt.Errorf("get %s: %s holds %d bytes, more than the %d any object read whole may have: the file is damaged; remove it, or replace it with a good copy",
			name, f.Name(), size, MaxGetSize)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		// The object cannot shrink under us (Put replaces the inode), so a
		// short read is a real error.
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return buf, nil
}

// ReadAt implements Store.
func (l *Local) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("readat %s: negative offset %d", name, off)
	}
	f, _, err := l.open(ctx, name)
	if err != nil {
		return fmt.Errorf("readat %s: %w", name, err)
	}
	defer f.Close()
	if isScattered(ctx) {
		adviseRandom(f)
	}
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("readat %s: %d bytes at %d: got %d: %w", name, len(p), off, n, err)
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	p, err := l.path(name)
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	fi, err := os.Stat(p)
	switch {
	case isNotExist(err):
		return 0, fmt.Errorf("stat %s: %w: %w", name, ErrNotFound, err)
	case err != nil:
		return 0, fmt.Errorf("stat %s: %w", name, err)
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("stat %s: %w", name, ErrNotFound)
	}
	return fi.Size(), nil
}

// Delete implements Store. Empty directories are left in place: removing
// them would race with a concurrent Put into the same directory.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	p, err := l.path(name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	// Lstat first so that a "directory" name, which is no object, is not
	// removed by os.Remove when empty.
	fi, err := os.Lstat(p)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
