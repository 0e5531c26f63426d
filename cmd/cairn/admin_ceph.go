//go:build ceph

package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	cephrbd "cairn/blockdev/rbd"
	"cairn/plugins/nova"
)

// rbdGroups lists the RBD groups of the pools o names. With no
// --ceph-conf and no Ceph configuration at the default place, or with the
// default pool missing, it skips them and says so: an operator's machine
// may reach OpenStack only.
func (a *app) rbdGroups(ctx context.Context, o leaksOptions) ([]nova.RBDGroup, []string, error) {
	conf := o.ceph.conf
	if !o.confGiven {
		if conf = a.getenv("CEPH_CONF"); conf == "" {
			conf = "/etc/ceph/ceph.conf"
		}
		if _, err := os.Stat(conf); err != nil {
			return nil, []string{fmt.Sprintf("RBD groups: no Ceph configuration at %s (%v); name one with --ceph-conf", conf, err)}, nil
		}
	}
	cl, err := cephrbd.Connect(ctx, cephrbd.ConnOptions{Conf: conf, ID: o.ceph.id, Keyring: o.ceph.keyring})
	if err != nil {
		return nil, nil, fmt.Errorf("look for RBD groups (--ceph-conf, --ceph-id): %w", err)
	}
	defer cl.Close()
	var out []nova.RBDGroup
	var skipped []string
	for _, pool := range o.pools {
		gs, err := cl.Groups(ctx, pool)
		if errors.Is(err, cephrbd.ErrNotFound) && !o.poolsGiven {
			skipped = append(skipped, fmt.Sprintf("RBD groups: pool %s does not exist; name Cinder's pools with --pool", pool))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, g := range gs {
			out = append(out, nova.RBDGroup{Pool: g.Pool, Name: g.Name, Images: g.Images, Snapshots: g.Snapshots})
		}
	}
	return out, skipped, nil
}
