package main

import (
	"context"
	"os"

	"cairn/dedup"
	"cairn/mount/files"
)

// withFiles opens the file system of the checkpoint named by spec, runs fn
// on its root and cleans everything up, even when fn fails or ctx ends.
func (a *app) withFiles(ctx context.Context, arg string, fn func(*os.Root) error) error {
	spec, err := parseFileSpec(arg)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	return a.withRepo(ctx, readOnly, func(r *dedup.Repository) error {
		id, err := r.ResolveID(ctx, spec.id)
		if err != nil {
			return err
		}
		return files.With(ctx, r, id, spec.file, a.notef, fn)
	})
}
