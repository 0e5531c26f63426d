package files

import (
	"errors"

	"cairn/internal/fspath"
)

var (
	// ErrNotRoot: loop devices and mounts need root.
	ErrNotRoot = errors.New("reading a checkpoint's files needs root to attach loop devices and mount file systems: run it as root (sudo); " +
		"without root, use 'cairn mount' and a tool that reads images (debugfs, 7z)")
	// ErrNoPartition: the checkpoint has no such disk or partition file.
	ErrNoPartition = fspath.ErrNoPartition
)
