//go:build !ceph

package main

import (
	"context"
	"errors"

	"cairn/dedup"
)

// errNoRados is what repositories on RADOS get in a build without Ceph.
var errNoRados = errors.New("repositories on RADOS need a cairn built with Ceph support: build with make (needs librados-dev) or go build -tags 'ceph pacific'")

// registerBackends wires the repository backends this build has: none
// besides local directories.
func registerBackends() {}

func (a *app) initRados(context.Context, string, dedup.InitOptions, *radosFlags, dedup.Options) error {
	return errNoRados
}

func (a *app) connectRados(context.Context, string, *radosFlags, dedup.Options) error {
	return errNoRados
}
