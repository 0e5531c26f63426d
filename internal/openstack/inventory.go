package openstack

import (
	"context"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/snapshots"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
)

// Inventory is what Cinder holds in every project: the view an operator
// checks for objects cairn left behind (cairn admin leaks).
type Inventory struct {
	Volumes     []Volume
	Snapshots   []Snapshot
	Attachments []Attachment
}

// Inventory lists the volumes, snapshots and attachments of all projects.
// It needs the admin role (Cinder's all_tenants).
func (c *Cinder) Inventory(ctx context.Context) (*Inventory, error) {
	inv := &Inventory{}
	vp, err := volumes.List(c.sc, volumes.ListOpts{AllTenants: true}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list the volumes of all projects (needs the admin role)")
	}
	if inv.Volumes, err = volumes.ExtractVolumes(vp); err != nil {
		return nil, wrap(err, "decode volumes")
	}
	sp, err := snapshots.ListDetail(c.sc, snapshots.ListOpts{AllTenants: true}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list the snapshots of all projects (needs the admin role)")
	}
	if inv.Snapshots, err = snapshots.ExtractSnapshots(sp); err != nil {
		return nil, wrap(err, "decode snapshots")
	}
	var out struct {
		Attachments []Attachment `json:"attachments"`
	}
	if _, err := c.sc.Get(ctx, c.sc.ServiceURL("attachments", "detail")+"?all_tenants=1", &out, nil); err != nil {
		return nil, wrap(err, "list the attachments of all projects (needs the admin role)")
	}
	inv.Attachments = out.Attachments
	return inv, nil
}

// AllServers lists the servers of all projects. It needs the admin role
// (Nova's all_tenants).
func (n *Nova) AllServers(ctx context.Context) ([]Server, error) {
	pages, err := servers.List(n.sc, servers.ListOpts{AllTenants: true}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list the servers of all projects (needs the admin role)")
	}
	var out []Server
	err = servers.ExtractServersInto(pages, &out)
	return out, wrap(err, "decode servers")
}

// AllImages lists every image an admin sees: of every visibility and
// member status, hidden ones too (Glance lists those only when asked).
func (g *Glance) AllImages(ctx context.Context) ([]Image, error) {
	var out []Image
	for _, hidden := range []bool{false, true} {
		pages, err := images.List(g.sc, images.ListOpts{Visibility: "all", MemberStatus: "all", Hidden: hidden}).AllPages(ctx)
		if err != nil {
			return nil, wrap(err, "list the images of all projects")
		}
		ims, err := images.ExtractImages(pages)
		if err != nil {
			return nil, wrap(err, "decode images")
		}
		out = append(out, ims...)
	}
	return out, nil
}
