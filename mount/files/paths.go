package files

import (
	"context"
	"errors"
	"fmt"
	"os"

	"cairn/dedup"
)

// With opens the file system of file of repository checkpoint id (see
// Open), runs fn on its root and cleans everything up, even when fn fails
// or ctx ends.
func With(ctx context.Context, r *dedup.Repository, id, file string, notef func(string, ...any), fn func(*os.Root) error) (err error) {
	s, err := Open(ctx, r, id, file, notef)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	root, err := os.OpenRoot(s.Dir())
	if err != nil {
		return err
	}
	defer root.Close()
	return fn(root)
}
