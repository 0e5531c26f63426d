//go:build ceph

package appliance

import (
	"fmt"
	"log/slog"
	"time"

	cephrbd "cairn/blockdev/rbd"
	"cairn/blockdev/serial"
	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
	"cairn/plugins/glance"
	"cairn/plugins/neutron"
	"cairn/plugins/nova"
)

// cloudPlugins returns the plugins of the cloud section (none without
// one): Cinder volumes, Nova servers (through the Cinder plugin, on its
// journal), Glance images and Neutron networks, all on one client of the
// cloud so that they share its tokens; the client is also the Trusts of
// scheduled operations.
func cloudPlugins(cfg Config, cj cinder.Journal, gj glance.Journal, timing *openstack.Timing, log *slog.Logger) ([]plugins.ProtectionPlugin, Trusts, error) {
	if cfg.Cloud == nil {
		return nil, nil, nil
	}
	oc, err := cloudConfig(cfg.Cloud)
	if err != nil {
		return nil, nil, err
	}
	oc.Timing = timing
	cl, err := openstack.New(oc)
	if err != nil {
		return nil, nil, fmt.Errorf("cloud: %w", err)
	}
	ceph := cephrbd.ConnOptions{Conf: cfg.CephConf, ID: cfg.CephID, Keyring: cfg.CephKeyring}
	devices := serial.Dir{Path: cfg.Cloud.DeviceDir, Wait: time.Duration(cfg.Cloud.DeviceWait)}
	vols, err := cinder.New(cinder.Config{Cloud: cl, Journal: cj, Log: log, Ceph: ceph,
		ServerID: cfg.Cloud.ServerID, Devices: devices, ReadPath: cfg.Cloud.ReadPath})
	if err != nil {
		return nil, nil, err
	}
	servers, err := nova.New(nova.Config{Cloud: cl, Volumes: vols, Journal: cj, EphemeralPool: cfg.Cloud.NovaEphemeralPool, Log: log})
	if err != nil {
		return nil, nil, err
	}
	images, err := glance.New(glance.Config{Cloud: cl, Journal: gj, Log: log, SpoolDir: cfg.Cloud.ImageSpoolDir, Ceph: ceph})
	if err != nil {
		return nil, nil, err
	}
	nets, err := neutron.New(neutron.Config{Cloud: cl, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return []plugins.ProtectionPlugin{vols, servers, images, nets}, cl, nil
}
