//go:build ceph

package appliance

import (
	"log/slog"

	cephrbd "cairn/blockdev/rbd"
	"cairn/plugins"
	rbdplugin "cairn/plugins/rbd"
)

// rbdPlugin returns the RBD plugin for cfg's rbd_pools, or nil when none
// are configured.
func rbdPlugin(cfg Config, log *slog.Logger) (plugins.ProtectionPlugin, error) {
	if len(cfg.RBDPools) == 0 {
		return nil, nil
	}
	return rbdplugin.New(rbdplugin.Config{
		Pools: cfg.RBDPools,
		Conn:  cephrbd.ConnOptions{Conf: cfg.CephConf, ID: cfg.CephID, Keyring: cfg.CephKeyring},
		Log:   log,
	})
}
