package store

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// List implements Store. A prefix need not end on a '/' boundary: the walk
// starts at the deepest directory the prefix names and filters on the rest.
func (l *Local) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	start := l.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		p, err := l.path(prefix[:i])
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		start = p
	}
	var fnErr error
	err := l.walk(ctx, start, func(name string) bool {
		// Prune directories that cannot hold a match.
		return strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/")
	}, func(name string, d fs.DirEntry) error {
		if !strings.HasPrefix(name, prefix) || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		fi, err := d.Info()
		if isNotExist(err) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		if fnErr = fn(name, fi.Size()); fnErr != nil {
			return fs.SkipAll
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// CleanTemp removes temp files older than olderThan, left behind by writers
// that were killed mid-Put, and returns how many it removed. Choose an age
// well above the longest Put, or an in-flight Put will fail.
func (l *Local) CleanTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("clean temp files: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	n := 0
	err := l.walk(ctx, l.root, nil, func(name string, d fs.DirEntry) error {
		if !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if isNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.ModTime().Before(cutoff) {
			return nil
		}
		err = os.Remove(filepath.Join(l.root, filepath.FromSlash(name)))
		if isNotExist(err) {
			return nil // renamed into place or cleaned by someone else
		}
		if err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("clean temp files: %w", err)
	}
	return n, nil
}

// walk calls file for every regular file below start with its slash-separated
// name relative to the root. It descends only into directories for which
// descend (if set) returns true and whose names do not start with '.', and
// treats entries vanishing mid-walk as never having existed.
func (l *Local) walk(ctx context.Context, start string, descend func(name string) bool, file func(name string, d fs.DirEntry) error) error {
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == l.root {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && (strings.HasPrefix(d.Name(), ".") || descend != nil && !descend(name)) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return file(name, d)
	})
}
