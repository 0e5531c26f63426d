package blockdev

import "errors"

var (
	// ErrTargetExists is returned when a restore would overwrite an existing
	// file or a block device and the caller did not pass Force.
	ErrTargetExists = errors.New("restore target already exists")

	// ErrTargetTooSmall is returned when a block device cannot hold the
	// volume being restored.
	ErrTargetTooSmall = errors.New("restore target too small")

	// ErrUnsupportedType is returned for paths that are neither a regular
	// file nor a block device (directories, character devices, sockets…).
	ErrUnsupportedType = errors.New("not a regular file or block device")

	// ErrSymlink is returned where a path confined to a directory names a
	// symlink, which is never followed there.
	ErrSymlink = errors.New("is a symlink, which is not followed")
)
