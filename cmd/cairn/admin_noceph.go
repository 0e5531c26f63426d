//go:build !ceph

package main

import (
	"context"

	"cairn/plugins/nova"
)

// rbdGroups skips the RBD groups: a build without Ceph has no librbd.
func (a *app) rbdGroups(context.Context, leaksOptions) ([]nova.RBDGroup, []string, error) {
	return nil, []string{"RBD groups: " + errNoCeph.Error()}, nil
}
