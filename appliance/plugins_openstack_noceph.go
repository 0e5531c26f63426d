//go:build !ceph

package appliance

import (
	"fmt"
	"log/slog"

	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
	"cairn/plugins/glance"
)

// cloudPlugins refuses a cloud section: the Cinder, Nova and Glance
// plugins read disks through librbd.
func cloudPlugins(cfg Config, _ cinder.Journal, _ glance.Journal, _ *openstack.Timing, _ *slog.Logger) ([]plugins.ProtectionPlugin, Trusts, error) {
	if cfg.Cloud == nil {
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("cloud is set, but this cairn was built without Ceph support, which the Cinder plugin reads volumes with (build with make; needs librados-dev/librbd-dev): %w", ErrInvalid)
}
