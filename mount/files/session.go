package files

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"cairn/dedup"
	"cairn/mount/fusefs"
)

// Session is one checkpoint's file system made readable: the repository
// mounted with FUSE in a private temporary directory, one of the
// checkpoint's files attached to a loop device read-only, and the file
// system on it mounted read-only. Close undoes whatever Open did, in
// reverse order, whatever state Open stopped in.
type Session struct {
	notef   func(string, ...any)
	tmp     string // private directory holding fuseDir and fsDir
	fuseDir string
	fsDir   string
	srv     *fusefs.Server
	srvDone chan struct{}
	image   string // the partition (or disk) file inside the FUSE mount
	loopDev string
}

// Open makes the file system of file ("disk.raw", "partN.raw", or "" for
// the first partition, else the disk) of repository checkpoint id
// readable under s.Dir(). It needs root (loop devices, mount). notef
// reports what the caller may want to tell a user (nil: nothing). On
// error everything Open did is undone.
func Open(ctx context.Context, r *dedup.Repository, id, file string, notef func(string, ...any)) (s *Session, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if notef == nil {
		notef = func(string, ...any) {}
	}
	s = &Session{notef: notef}
	if err := s.open(ctx, r, id, file); err != nil {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
		return nil, err
	}
	return s, nil
}

// Dir is where the checkpoint's file system is mounted.
func (s *Session) Dir() string { return s.fsDir }

func (s *Session) open(ctx context.Context, r *dedup.Repository, id, file string) error {
	tmp, err := os.MkdirTemp("", "cairn-files-")
	if err != nil {
		return err
	}
	s.tmp, s.fuseDir, s.fsDir = tmp, filepath.Join(tmp, "repo"), filepath.Join(tmp, "fs")
	for _, d := range []string{s.fuseDir, s.fsDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if s.srv, err = fusefs.Mount(ctx, r, s.fuseDir, fusefs.Options{Log: s.notef}); err != nil {
		return err
	}
	s.srvDone = make(chan struct{})
	go func() {
		s.srv.Wait()
		close(s.srvDone)
	}()
	cpDir := filepath.Join(s.fuseDir, "by-id", id)
	if file, err = pickFile(cpDir, file); err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	s.image = filepath.Join(cpDir, file)
	out, err := runTool(ctx, "losetup", "--find", "--show", "--read-only", s.image)
	if err != nil {
		return fmt.Errorf("attach %s to a loop device: %w", file, err)
	}
	s.loopDev = strings.TrimSpace(out)
	// noload: no ext3/4 journal replay, which a read-only device cannot
	// take; other file systems refuse the option, so try without it.
	_, err = runTool(ctx, "mount", "-o", "ro,noload,nodev,nosuid,noexec", s.loopDev, s.fsDir)
	if err != nil && ctx.Err() == nil {
		_, err = runTool(ctx, "mount", "-o", "ro,nodev,nosuid,noexec", s.loopDev, s.fsDir)
	}
	if err != nil {
		return fmt.Errorf("mount %s of checkpoint %s (is there a file system on it? try another :PARTITION): %w", file, id, err)
	}
	return nil
}

// pickFile checks that the checkpoint directory has file, or picks the
// default: the first partition, else the whole disk.
func pickFile(cpDir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(cpDir, "info.json"))
	if err != nil {
		return "", err
	}
	var in struct {
		Files []struct{ File string }
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return "", fmt.Errorf("info.json: %w", err)
	}
	var names []string
	for _, f := range in.Files {
		names = append(names, f.File)
	}
	switch {
	case file == "" && len(names) > 1:
		return names[1], nil // partitions follow disk.raw, by number
	case file == "":
		return "disk.raw", nil
	}
	for _, n := range names {
		if n == file {
			return file, nil
		}
	}
	return "", fmt.Errorf("no %s; it has %s: %w", file, strings.Join(names, ", "), ErrNoPartition)
}

// Close unmounts the file system, detaches the loop device, unmounts the
// FUSE mount and removes the temporary directories. It runs without the
// caller's context, which may be cancelled already (Ctrl-C).
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if s.fsDir != "" && isMountPoint(s.fsDir) {
		if err := retry(ctx, func() error { _, err := runTool(ctx, "umount", s.fsDir); return err }); err != nil {
			s.notef("umount %s: %v; detaching it lazily", s.fsDir, err)
			if _, err := runTool(ctx, "umount", "-l", s.fsDir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.image != "" {
		// Every loop device on the image, including one losetup attached
		// before it was interrupted.
		devs := []string{s.loopDev}
		if out, err := runTool(ctx, "losetup", "--noheadings", "--output", "NAME", "--associated", s.image); err == nil {
			devs = append(devs, strings.Fields(out)...)
		}
		seen := map[string]bool{"": true}
		for _, d := range devs {
			if !seen[d] {
				seen[d] = true
				if _, err := runTool(ctx, "losetup", "--detach", d); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if s.srv != nil {
		// The loop device lets go of the image asynchronously; stopMount
		// retries while the FUSE mount is still busy.
		if err := StopMount(s.srv, s.srvDone, 10*time.Second, s.notef); err != nil {
			errs = append(errs, err)
		}
	}
	// Remove, not RemoveAll: a directory still mounted must never be
	// emptied.
	for _, d := range []string{s.fsDir, s.fuseDir, s.tmp} {
		if d != "" {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// runTool runs an outside command and returns its stdout; a failure carries
// its stderr.
func runTool(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }), "; "))
	}
	return stdout.String(), nil
}

// isMountPoint reports whether something is mounted on dir: it is then on
// another device than its parent.
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// retry calls fn up to 10 times, 200 ms apart, until it succeeds.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for range 10 {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}
