package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"cairn/appliance"
	"cairn/dedup"
	"cairn/internal/fspath"
)

// FileReader opens the file system of file ("" default, "disk.raw",
// "partN.raw") of repository checkpoint backupID and runs fn on its root,
// cleaning up afterwards (files.With in the daemon; a directory in
// tests). The API cannot import mount/, so cmd/cairn wires it in.
type FileReader func(ctx context.Context, repo *dedup.Repository, backupID, file string, fn func(*os.Root) error) error

// errNoFiles: the daemon was started without file browsing.
var errNoFiles = errors.New("file browsing is not available on this daemon")

// maxDirEntries bounds one directory listing.
const maxDirEntries = 10000

// fileEntry is one directory entry of a checkpoint's file system.
type fileEntry struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"` // file, dir, symlink, other
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
}

// withCheckpointFiles checks the request (project, provider, checkpoint,
// resource, partition) and runs fn on the file system of the resource's
// backup in the checkpoint, with the path asked for, relative to it.
func (s *Server) withCheckpointFiles(r *http.Request, fn func(root *os.Root, rel string) error) error {
	p, err := ids(r, "pid", "id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	res := q.Get("resource")
	if res == "" {
		return fmt.Errorf("%w: name the checkpoint's resource whose files to read (?resource=ID)", errBadBody)
	}
	file, err := fspath.PartitionFile(q.Get("partition"))
	if err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	if s.files == nil {
		return errNoFiles
	}
	rel := fspath.RelPath(q.Get("path"))
	return s.a.WithBackup(r.Context(), p, r.PathValue("pid"), r.PathValue("id"), res, func(repo *dedup.Repository, backupID string) error {
		err := s.files(r.Context(), repo, backupID, file, func(root *os.Root) error { return fn(root, rel) })
		if errors.Is(err, fspath.ErrNoPartition) {
			return fmt.Errorf("checkpoint %s: %w: %w", r.PathValue("id"), appliance.ErrNotFound, err)
		}
		return err
	})
}

// listFiles serves GET …/checkpoints/{id}/files: a directory of a
// checkpoint's file system, sorted by name.
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	var out []fileEntry
	err := s.withCheckpointFiles(r, func(root *os.Root, rel string) error {
		d, err := root.Open(rel)
		if err != nil {
			return fileErr(rel, err)
		}
		defer d.Close()
		des, err := d.ReadDir(maxDirEntries + 1)
		if err != nil && !errors.Is(err, io.EOF) {
			return fileErr(rel, err)
		}
		if len(des) > maxDirEntries {
			return fmt.Errorf("%w: %s has more than %d entries; list it with cairn files ls", appliance.ErrConflict, rel, maxDirEntries)
		}
		out = make([]fileEntry, 0, len(des))
		for _, de := range des {
			fi, err := de.Info()
			if err != nil {
				continue // removed meanwhile: cannot happen on a read-only mount
			}
			out = append(out, fileEntry{Name: de.Name(), Type: entryType(fi.Mode()), Size: fi.Size(), Mode: fi.Mode().String(), ModTime: fi.ModTime().UTC()})
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	slices.SortFunc(out, func(a, b fileEntry) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"path": "/" + strings.TrimPrefix(fspath.RelPath(r.URL.Query().Get("path")), "."), "files": out})
}

// downloadFile serves GET …/checkpoints/{id}/files/content: one regular
// file of a checkpoint's file system, as an attachment.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	started := false
	err := s.withCheckpointFiles(r, func(root *os.Root, rel string) error {
		f, err := root.Open(rel)
		if err != nil {
			return fileErr(rel, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fileErr(rel, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is a %s, not a regular file: only files download", errBadBody, rel, entryType(fi.Mode()))
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base("/" + rel)}))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		started = true
		w.WriteHeader(http.StatusOK)
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil && !started {
		writeError(w, err)
	}
	// An error after the headers went out shows as a short body: the
	// client sees fewer bytes than Content-Length.
}

// fileErr turns a file-system error into the API's.
func fileErr(rel string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", rel, appliance.ErrNotFound)
	}
	// The rest are a path the root refuses (a symlink out of the file
	// system) or an unreadable entry: the request's, not the daemon's.
	return fmt.Errorf("%w: %s: %v", errBadBody, rel, err)
}

func entryType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}
