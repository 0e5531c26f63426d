//go:build !ceph

package main

import (
	"context"
	"errors"

	"cairn/dedup"
)

// errNoCeph is what every RBD feature returns in a build without Ceph.
var errNoCeph = errors.New("built without Ceph support; build with make (needs librados-dev/librbd-dev)")

// Without the "ceph" build tag cairn has no librbd: every RBD feature
// answers errNoCeph.

func (a *app) backupRBD(context.Context, rbdBackupRequest) error { return errNoCeph }

func (a *app) restoreRBD(context.Context, *dedup.Repository, *dedup.Checkpoint, string, bool, *cephFlags) error {
	return errNoCeph
}

func (a *app) verifyAgainstSource(context.Context, *verifySourceFlags) error { return errNoCeph }
