//go:build !ceph

package appliance

import (
	"context"
	"fmt"

	"cairn/dedup"
)

// initRados refuses repository_pools: this build has no librados.
func (s *repoSet) initRados(context.Context, string, string, dedup.InitOptions, dedup.Options) (*dedup.Repository, error) {
	return nil, fmt.Errorf("repository_pools is set, but this cairn was built without Ceph support (build with make; needs librados-dev): %w", ErrInvalid)
}
