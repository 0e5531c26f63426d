package openstack

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/volumeattach"
)

// ComputeMicroversion is the compute API version cairn speaks: 2.47+
// embeds the flavor (name, vcpus, ram, disk) in a server, 2.79 shows
// delete_on_termination of attachments.
const ComputeMicroversion = "2.79"

// Server is what cairn reads of a Nova server.
type Server struct {
	ID               string                     `json:"id"`
	Name             string                     `json:"name"`
	TenantID         string                     `json:"tenant_id"`
	Status           string                     `json:"status"`
	KeyName          string                     `json:"key_name"`
	Metadata         map[string]string          `json:"metadata"`
	AvailabilityZone string                     `json:"OS-EXT-AZ:availability_zone"`
	Flavor           ServerFlavor               `json:"flavor"`
	SecurityGroups   []struct{ Name string }    `json:"security_groups"`
	Addresses        map[string][]ServerAddress `json:"addresses"`
	Volumes          []struct{ ID string }      `json:"os-extended-volumes:volumes_attached"`
	RootDevice       string                     `json:"OS-EXT-SRV-ATTR:root_device_name"`
	RawImage         any                        `json:"image"`
	Fault            *struct{ Message string }  `json:"fault"`
}

// ServerFlavor is the flavor embedded in a server (2.47+).
type ServerFlavor struct {
	Name  string `json:"original_name"`
	VCPUs int    `json:"vcpus"`
	RAM   int    `json:"ram"`
	Disk  int    `json:"disk"`
}

// ServerAddress is one address of a server on a network.
type ServerAddress struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"`
	MAC     string `json:"OS-EXT-IPS-MAC:mac_addr"`
}

// ImageID is the image the server booted from; "" when it booted from a
// volume (Nova shows "" for the image then).
func (s *Server) ImageID() string {
	if m, ok := s.RawImage.(map[string]any); ok {
		id, _ := m["id"].(string)
		return id
	}
	return ""
}

// VolumeAttachment is one volume attached to a server.
type VolumeAttachment = volumeattach.VolumeAttachment

// Interface is one port of a server.
type Interface = attachinterfaces.Interface

// Nova is the compute API of one project. Safe for concurrent use.
type Nova struct {
	sc *gophercloud.ServiceClient
	// w polls with the cloud's wait timeout and interval (the waits of
	// both services behave alike).
	w *Cinder
}

// Nova returns the compute client of project ("" for the credentials'
// own project), authenticating on first use. Nova, like Cinder, shows a
// user with an admin role any project's server by ID: callers check the
// server's TenantID.
func (c *Cloud) Nova(ctx context.Context, project string) (*Nova, error) {
	s := scopeOf(ctx, project)
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.nova[s]; v != nil {
		return v, nil
	}
	pc, err := c.provider(ctx, s, apiTimeout)
	if err != nil {
		return nil, err
	}
	sc, err := openstack.NewComputeV2(pc, c.eo)
	if err != nil {
		return nil, fmt.Errorf("compute endpoint: %w", err)
	}
	sc.Microversion = ComputeMicroversion
	w := newCinder(&gophercloud.ServiceClient{}, c.cfg)
	v := &Nova{sc: sc, w: w}
	c.nova[s] = v
	return v, nil
}

// Servers lists the project's servers.
func (n *Nova) Servers(ctx context.Context) ([]Server, error) {
	pages, err := servers.List(n.sc, servers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list servers")
	}
	var out []Server
	err = servers.ExtractServersInto(pages, &out)
	return out, wrap(err, "decode servers")
}

// Server returns one server; ErrNotFound when there is none of that ID.
func (n *Nova) Server(ctx context.Context, id string) (*Server, error) {
	var out Server
	if err := servers.Get(ctx, n.sc, id).ExtractInto(&out); err != nil {
		return nil, wrap(err, "server %s", id)
	}
	return &out, nil
}

// VolumeAttachments lists the volumes attached to a server, in boot
// order: the root device first, then by device name (Nova's API has no
// boot index; device names follow the order volumes were attached in).
func (n *Nova) VolumeAttachments(ctx context.Context, s *Server) ([]VolumeAttachment, error) {
	pages, err := volumeattach.List(n.sc, s.ID).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list volume attachments of server %s", s.ID)
	}
	as, err := volumeattach.ExtractVolumeAttachments(pages)
	if err != nil {
		return nil, wrap(err, "decode volume attachments of server %s", s.ID)
	}
	SortAttachments(as, s.RootDevice)
	return as, nil
}

// SortAttachments puts the attachment on root first, then orders by
// device name, shorter names first (/dev/vdz before /dev/vdaa).
func SortAttachments(as []VolumeAttachment, root string) {
	sort.SliceStable(as, func(i, j int) bool {
		a, b := as[i].Device, as[j].Device
		if (a == root) != (b == root) {
			return a == root
		}
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
}

// Interfaces lists a server's ports.
func (n *Nova) Interfaces(ctx context.Context, server string) ([]Interface, error) {
	pages, err := attachinterfaces.List(n.sc, server).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list interfaces of server %s", server)
	}
	is, err := attachinterfaces.ExtractInterfaces(pages)
	return is, wrap(err, "decode interfaces of server %s", server)
}

// FlavorByName returns the ID of the flavor named name.
func (n *Nova) FlavorByName(ctx context.Context, name string) (*flavors.Flavor, error) {
	pages, err := flavors.ListDetail(n.sc, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list flavors")
	}
	fs, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return nil, wrap(err, "decode flavors")
	}
	for i := range fs {
		if fs[i].Name == name {
			return &fs[i], nil
		}
	}
	return nil, fmt.Errorf("flavor %q: %w", name, ErrNotFound)
}

// NIC is one network of a new server.
type NIC struct {
	Network, Port, FixedIP string
}

// ServerSpec is a new server booting from an existing volume.
type ServerSpec struct {
	Name, FlavorID, KeyName, AvailabilityZone string
	RootVolume                                string
	SecurityGroups                            []string
	NICs                                      []NIC // none: the server gets no network
	Metadata                                  map[string]string
}

// CreateServer creates a server booting from s.RootVolume and waits until
// it is ACTIVE. A server that went to ERROR is returned with the error,
// for the caller to delete.
func (n *Nova) CreateServer(ctx context.Context, s ServerSpec) (*Server, error) {
	opts := servers.CreateOpts{Name: s.Name, FlavorRef: s.FlavorID, SecurityGroups: s.SecurityGroups,
		AvailabilityZone: s.AvailabilityZone, Metadata: s.Metadata,
		BlockDevice: []servers.BlockDevice{{SourceType: servers.SourceVolume, DestinationType: servers.DestinationVolume,
			UUID: s.RootVolume, BootIndex: 0}}}
	if len(s.NICs) == 0 {
		opts.Networks = "none"
	} else {
		ns := make([]servers.Network, 0, len(s.NICs))
		for _, c := range s.NICs {
			ns = append(ns, servers.Network{UUID: c.Network, Port: c.Port, FixedIP: c.FixedIP})
		}
		opts.Networks = ns
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := servers.Create(ctx, n.sc, keyName{opts, s.KeyName}, nil).ExtractInto(&created); err != nil {
		return nil, wrap(err, "create server %q", s.Name)
	}
	got, err := n.WaitServer(ctx, created.ID, "ACTIVE")
	if got == nil {
		got = &Server{ID: created.ID, Name: s.Name}
	}
	return got, err
}

// keyName adds key_name to a server's create request (gophercloud keeps
// it in the keypairs extension).
type keyName struct {
	servers.CreateOpts
	key string
}

func (k keyName) ToServerCreateMap() (map[string]any, error) {
	m, err := k.CreateOpts.ToServerCreateMap()
	if err == nil && k.key != "" {
		m["server"].(map[string]any)["key_name"] = k.key
	}
	return m, err
}

// WaitServer waits until server id has status want and returns it.
func (n *Nova) WaitServer(ctx context.Context, id, want string) (*Server, error) {
	var s *Server
	err := n.w.poll(ctx, "server "+id, "become "+want, func(ctx context.Context) (string, bool, error) {
		got, err := n.Server(ctx, id)
		if err != nil {
			return "", false, err
		}
		s = got
		status := got.Status
		if status == "ERROR" && got.Fault != nil {
			status = "error (" + got.Fault.Message + ")"
		}
		return strings.ToLower(status), got.Status == want, nil
	})
	return s, err
}

// DeleteServer deletes a server and waits until it is gone; a missing
// server is deleted.
func (n *Nova) DeleteServer(ctx context.Context, id string) error {
	err := servers.Delete(ctx, n.sc, id).ExtractErr()
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return wrap(err, "delete server %s", id)
	}
	return n.w.waitGone(ctx, "server", id, func(ctx context.Context) (string, error) {
		s, err := servers.Get(ctx, n.sc, id).Extract()
		if err != nil {
			return "", err
		}
		if s.Status == "ERROR" {
			return "deleting", nil // an ERROR server being deleted is not a failed wait
		}
		return s.Status, nil
	})
}

// AttachVolume attaches a volume to a server as device ("" lets Nova
// choose) and returns the attachment.
func (n *Nova) AttachVolume(ctx context.Context, server, volume, device string) (*VolumeAttachment, error) {
	a, err := volumeattach.Create(ctx, n.sc, server, volumeattach.CreateOpts{VolumeID: volume, Device: device}).Extract()
	return a, wrap(err, "attach volume %s to server %s", volume, server)
}

// DetachVolume detaches a volume from a server; a volume that is not
// attached to it (404) is detached. Nova detaches asynchronously: wait
// for the volume to become available in Cinder.
func (n *Nova) DetachVolume(ctx context.Context, server, volume string) error {
	err := volumeattach.Delete(ctx, n.sc, server, volume).ExtractErr()
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return wrap(err, "detach volume %s from server %s", volume, server)
}

// DeleteServerMetadata removes one metadata key of a server; a missing
// key is removed.
func (n *Nova) DeleteServerMetadata(ctx context.Context, id, key string) error {
	err := servers.DeleteMetadatum(ctx, n.sc, id, key).ExtractErr()
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return wrap(err, "delete metadata %s of server %s", key, id)
}

// SetServerMetadata sets metadata keys of a server, keeping the others.
func (n *Nova) SetServerMetadata(ctx context.Context, id string, md map[string]string) error {
	_, err := servers.UpdateMetadata(ctx, n.sc, id, servers.MetadataOpts(md)).Extract()
	return wrap(err, "set metadata of server %s", id)
}

// ServersByMetadata lists the project's servers whose metadata key has
// value (for crash recovery: what a journal entry created).
func (n *Nova) ServersByMetadata(ctx context.Context, key, value string) ([]Server, error) {
	ss, err := n.Servers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range ss {
		if s.Metadata[key] == value {
			out = append(out, s)
		}
	}
	return out, nil
}

// SetBootable marks a volume bootable (Nova boots only from such), as
// Cinder does for a volume made from an image.
func (c *Cinder) SetBootable(ctx context.Context, id string) error {
	err := volumes.SetBootable(ctx, c.sc, id, volumes.BootableOpts{Bootable: true}).ExtractErr()
	return wrap(err, "mark volume %s bootable", id)
}
