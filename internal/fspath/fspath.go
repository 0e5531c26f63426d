// Package fspath names things inside a checkpoint's file system: its
// partition files and paths confined to its root. mount/files (which
// mounts them) and api (which takes them from requests) share it.
package fspath

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

var (
	// ErrNoPartition: the checkpoint has no such disk or partition file.
	ErrNoPartition = errors.New("no such partition")
	// ErrBadPartition: a partition name that is neither a number nor "disk".
	ErrBadPartition = errors.New("bad partition: want a number (1, part2) or \"disk\"")
)

// PartitionFile turns a partition as users name it ("" for the default,
// "1", "part2", "disk" or "0") into the file of a checkpoint's directory
// ("" for the default, "partN.raw", "disk.raw").
func PartitionFile(part string) (string, error) {
	if part == "" {
		return "", nil
	}
	switch p := strings.TrimPrefix(strings.ToLower(part), "part"); {
	case p == "disk" || p == "0":
		return "disk.raw", nil
	case p != "" && strings.Trim(p, "0123456789") == "" && p[0] != '0' && len(p) < 6:
		return "part" + p + ".raw", nil
	}
	return "", fmt.Errorf("partition %q: %w", part, ErrBadPartition)
}

// RelPath turns a path inside the checkpoint's file system into one
// relative to its root ("." for the root). ".." cannot climb above it.
func RelPath(p string) string {
	r := strings.TrimPrefix(path.Clean("/"+p), "/")
	if r == "" {
		return "."
	}
	return r
}
