package serial

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	// ErrNoDevice: the volume's device did not appear within the wait.
	ErrNoDevice = errors.New("the attached volume's device did not appear")
	// ErrStillThere: the volume's device was still there at the end of
	// the wait after a detach.
	ErrStillThere = errors.New("the detached volume's device is still there")
)

// Finder finds the block device of an attached volume.
//
// Contract: Find returns the path of a block device (symlinks resolved)
// whose serial names volumeID, waiting for it to appear; it fails with
// ErrNoDevice, saying what it waited for, when none does in time, and
// with ctx's error when ctx ends first. It never returns a path that is
// not a block device.
//
// Gone waits until no name of volumeID is left (the hypervisor has let go
// of the disk after a detach), failing with ErrStillThere when one stays
// for the whole wait.
type Finder interface {
	Find(ctx context.Context, volumeID string) (string, error)
	Gone(ctx context.Context, volumeID string) error
}

// Names returns the names a disk whose serial is volumeID gets in
// /dev/disk/by-id: virtio-blk keeps the first 20 characters of the
// serial ("virtio-<20>"), QEMU's SCSI disk the whole of it
// ("scsi-0QEMU_QEMU_HARDDISK_<id>").
func Names(volumeID string) []string {
	short := volumeID
	if len(short) > 20 {
		short = short[:20]
	}
	return []string{"virtio-" + short, "scsi-0QEMU_QEMU_HARDDISK_" + volumeID}
}

// Dir is the production Finder: it looks for Names(volumeID) in a
// device directory, every Poll, for at most Wait.
type Dir struct {
	// Path is the device directory (DefaultDir when "").
	Path string
	// Wait bounds the wait for the device (DefaultWait when 0).
	Wait time.Duration
	// Poll is the interval between looks (DefaultPoll when 0).
	Poll time.Duration
}

// Defaults of Dir.
const (
	DefaultDir  = "/dev/disk/by-id"
	DefaultWait = 2 * time.Minute
	DefaultPoll = 250 * time.Millisecond
)

var _ Finder = Dir{}

// Find implements Finder. A name that exists but is not a block device
// (a dangling link, a regular file) is waited past, not returned: udev
// may be replacing it.
func (d Dir) Find(ctx context.Context, volumeID string) (string, error) {
	var path string
	err := d.wait(ctx, volumeID, "appear", ErrNoDevice, func(dir string, names []string) (err error) {
		path, err = look(dir, names)
		return err
	})
	return path, err
}

// Gone implements Finder.
func (d Dir) Gone(ctx context.Context, volumeID string) error {
	return d.wait(ctx, volumeID, "go away", ErrStillThere, func(dir string, names []string) error {
		for _, n := range names {
			if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s is still there", n)
			}
		}
		return nil
	})
}

// wait calls done every Poll until it returns nil, for at most Wait; at
// the end it fails with timeout, saying what it waited for (the device
// of volumeID to what) and done's last error.
func (d Dir) wait(ctx context.Context, volumeID, what string, timeout error, done func(dir string, names []string) error) error {
	if volumeID == "" || strings.ContainsAny(volumeID, "/\x00") || volumeID == "." || volumeID == ".." {
		return fmt.Errorf("the device of volume %q: not a volume ID", volumeID)
	}
	dir, wait, poll := d.Path, d.Wait, d.Poll
	if dir == "" {
		dir = DefaultDir
	}
	if wait <= 0 {
		wait = DefaultWait
	}
	if poll <= 0 {
		poll = DefaultPoll
	}
	names := Names(volumeID)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		last := done(dir, names)
		if last == nil {
			return nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the device of volume %s (%s in %s) to %s: %w", volumeID, strings.Join(names, " or "), dir, what, ctx.Err())
		case <-deadline.C:
			t.Stop()
			return fmt.Errorf("waited %s for the device of volume %s (%s in %s) to %s (last: %v): %w",
				wait, volumeID, strings.Join(names, " or "), dir, what, last, timeout)
		case <-t.C:
		}
	}
}

// look returns the first of names in dir that is a block device.
func look(dir string, names []string) (string, error) {
	var errs []error
	for _, n := range names {
		path, err := filepath.EvalSymlinks(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: none", n))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
			errs = append(errs, fmt.Errorf("%s is %s, not a block device", n, path))
			continue
		}
		return path, nil
	}
	return "", errors.Join(errs...)
}
