//go:build !linux

package store

import "os"

// adviseRandom does nothing where the kernel takes no such advice.
func adviseRandom(*os.File) {}
