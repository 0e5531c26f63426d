//go:build ceph

package nova

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	cephrbd "cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/plugins"
	"cairn/plugins/cinder"
)

// together protects the server's volumes at one point in time:
//
//  1. each volume gets its Cinder snapshot, one after another (they are
//     the rotation snapshots, made and deleted through Cinder, and the
//     bases of the next protection's diffs);
//  2. an RBD group of the volumes' images takes one group snapshot:
//     librbd quiesces writes to all the images, from every client, while
//     it snapshots each of them;
//  3. each volume is read at its image's snapshot of the group, with the
//     extents changed since the previous Cinder snapshot (taken before
//     the previous group snapshot: a superset of what changed since);
//  4. the group and its snapshot are removed (Cinder deletes no volume
//     whose image is in a group).
//
// The group is journaled before it is created. When the group snapshot
// cannot be taken, the volumes are read at their Cinder snapshots and
// the note says why; bs is nil only when nothing was committed and the
// caller should protect the volumes sequentially itself (never, today).
func (p *Plugin) together(ctx context.Context, repo *dedup.Repository, project, server string, m *Manifest,
	vreq func(*VolumeBackup) plugins.ProtectRequest) (bs []*plugins.Backup, note ConsistencyNote, err error) {
	pds := make([]*cinder.Pending, 0, len(m.Volumes))
	abort := func() {
		for _, pd := range pds {
			pd.Abort(ctx)
		}
	}
	specs := make([]cephrbd.Spec, 0, len(m.Volumes))
	for i := range m.Volumes {
		pd, err := p.volumes.Prepare(ctx, repo, vreq(&m.Volumes[i]))
		if err != nil {
			abort()
			return nil, note, fmt.Errorf("volume %s (%s): %w", m.Volumes[i].VolumeID, m.Volumes[i].Device, err)
		}
		pds = append(pds, pd)
		pool, image := pd.Image()
		specs = append(specs, cephrbd.Spec{Pool: pool, Image: image})
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	pool, group := specs[0].Pool, GroupName(server, b)
	e, err := p.record(ctx, cinder.Entry{Kind: KindGroup, Project: project, Name: pool + "/" + group})
	if err != nil {
		abort()
		return nil, note, err
	}
	defer p.removeGroup(ctx, e)
	ids, gerr := p.volumes.GroupSnapshot(ctx, pool, group, specs)
	if gerr != nil {
		p.log.Warn("no consistent snapshot of the server's volumes; they are read at their Cinder snapshots, taken one after another",
			"type", Type, "server", server, "err", gerr)
		ids = make([]uint64, len(pds))
		note = ConsistencyNote{Level: Sequential, Method: "cinder-snapshots",
			Reason: "the RBD group snapshot failed (" + gerr.Error() + "); " + sequentialReason}
	} else {
		note = ConsistencyNote{Level: Consistent, Method: "rbd-group-snapshot",
			Reason: fmt.Sprintf("one RBD group snapshot of the %d volumes' images (librbd quiesces writes to all of them while it takes it); "+
				"no guest agent quiesced the file systems: crash-consistent", len(pds))}
	}
	for i, pd := range pds {
		bk, err := pd.Commit(ctx, ids[i])
		if err != nil {
			pds = pds[i+1:]
			abort()
			return bs, note, fmt.Errorf("volume %s (%s): %w", m.Volumes[i].VolumeID, m.Volumes[i].Device, err)
		}
		bs = append(bs, bk)
	}
	return bs, note, nil
}

// removeGroup removes a protection's RBD group and drops its entry; a
// failure leaves the entry for Recover.
func (p *Plugin) removeGroup(ctx context.Context, e cinder.Entry) {
	pool, group := splitPoolGroup(e.Name)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := p.volumes.RemoveGroup(ctx, pool, group); err != nil {
		p.log.Warn("could not remove cairn's RBD group; the next start retries", "type", Type, "group", e.Name, "err", err)
		return
	}
	p.forget(ctx, e)
}

func splitPoolGroup(name string) (string, string) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}
