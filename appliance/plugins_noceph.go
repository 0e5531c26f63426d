//go:build !ceph

package appliance

import (
	"fmt"
	"log/slog"

	"cairn/plugins"
)

// rbdPlugin refuses rbd_pools: this build has no librbd.
func rbdPlugin(cfg Config, _ *slog.Logger) (plugins.ProtectionPlugin, error) {
	if len(cfg.RBDPools) == 0 {
		return nil, nil
	}
	return nil, fmt.Errorf("rbd_pools is set, but this cairn was built without Ceph support (build with make; needs librados-dev/librbd-dev): %w", ErrInvalid)
}
