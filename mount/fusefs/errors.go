package fusefs

import "errors"

var (
	// ErrNoMountPoint means the mount point does not exist.
	ErrNoMountPoint = errors.New("mount point does not exist")
	// ErrNotDirectory means the mount point is not a directory.
	ErrNotDirectory = errors.New("mount point is not a directory")
	// ErrAlreadyMounted means something is already mounted on the mount
	// point (or a dead FUSE mount is left there).
	ErrAlreadyMounted = errors.New("already mounted")
)
