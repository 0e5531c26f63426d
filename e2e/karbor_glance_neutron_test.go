//go:build ceph

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"cairn/internal/openstack"
)

// The protectable types of the Glance and Neutron plugins.
const (
	glanceType  = "OS::Glance::Image"
	neutronType = "OS::Neutron::Network"
)

// TestKarborGlanceNeutron drives the Glance image and Neutron network
// plugins with the real karbor client against the test cloud (a real
// neutron-server): a plan of an image and a network; a checkpoint holding
// both; a restore that makes a new image with the same bytes and
// properties and finds the intact network; and, once the network is
// deleted, a restore that recreates it with its subnet.
func TestKarborGlanceNeutron(t *testing.T) {
	bin := requireKarbor(t)
	c := requireCinder(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cloud.Glance(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := cloud.Neutron(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	removeImages := func(name string) {
		ims, _ := g.Images(ctx, c.project)
		for _, im := range ims {
			if im.Name == name {
				_ = g.DeleteImage(ctx, im.ID)
			}
		}
	}

	data := randomBytes(43, 3*int(mib)+17)
	im, err := g.CreateImage(ctx, images.CreateOpts{Name: "e2e-image", DiskFormat: "raw", ContainerFormat: "bare",
		MinRAM: 32, Tags: []string{"e2e"}, Properties: map[string]string{"hw_disk_bus": "virtio"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.DeleteImage(ctx, im.ID) })
	if err := g.Upload(ctx, im.ID, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if im, err = g.WaitImage(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	c.project = im.Owner
	netName := fmt.Sprintf("e2e-net-%d", time.Now().UnixNano())
	removeNetwork := func() {
		nets, _ := n.Networks(ctx, "")
		for _, net := range nets {
			if net.Name == netName {
				ss, _ := n.Subnets(ctx, net.ID)
				for _, s := range ss {
					_ = subnets.Delete(ctx, n.ServiceClient(), s.ID).ExtractErr()
				}
				if err := networks.Delete(ctx, n.ServiceClient(), net.ID).ExtractErr(); err != nil {
					t.Errorf("delete network %s: %v", net.ID, err)
				}
			}
		}
	}
	t.Cleanup(removeNetwork)
	net, err := n.CreateNetwork(ctx, networks.CreateOpts{Name: netName})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateSubnet(ctx, subnets.CreateOpts{NetworkID: net.ID, Name: netName + "-v4", CIDR: "10.88.0.0/24", IPVersion: 4}); err != nil {
		t.Fatal(err)
	}

	a := startCinderAppliance(t, c, t.TempDir())
	k := karborCLI{t: t, bin: bin, a: a, project: c.project}
	if got := column(k.table("protectable-list"), "Protectable type"); !slices.Contains(got, glanceType) || !slices.Contains(got, neutronType) {
		t.Fatalf("protectable-list: %v, want %s and %s", got, glanceType, neutronType)
	}
	if ids := column(k.table("protectable-list-instances", glanceType), "Id"); !slices.Contains(ids, im.ID) {
		t.Fatalf("protectable-list-instances %s: %v, want image %s", glanceType, ids, im.ID)
	}
	if ids := column(k.table("protectable-list-instances", neutronType), "Id"); !slices.Contains(ids, net.ID) {
		t.Fatalf("protectable-list-instances %s: %v, want network %s", neutronType, ids, net.ID)
	}
	plan := k.dict("plan-create", "image-and-network", karborProvider,
		fmt.Sprintf("%s=%s=%s,%s=%s=%s", im.ID, glanceType, im.Name, net.ID, neutronType, netName))
	cp, graph := protectWithCLI(t, k, plan["id"])
	if r := graph[glanceType]; r.Status != "available" || r.Size != int64(len(data)) {
		t.Errorf("image in checkpoint-show: %+v, want available, %d bytes", r, len(data))
	}
	if r := graph[neutronType]; r.Status != "available" || r.Size == 0 {
		t.Errorf("network in checkpoint-show: %+v, want available with its document", r)
	}

	t.Cleanup(func() { removeImages("e2e-image-restored") })
	rs := restoreWithCLI(t, k, cp, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=e2e-image-restored", glanceType, im.ID))
	if rs["status"] != "success" {
		t.Fatalf("restore of checkpoint %s: %v\ndaemon stderr: %s", cp, rs, clip(a.stderr.String()))
	}
	if !strings.Contains(rs["restored"], net.ID) {
		t.Errorf("restore-show restored = %q: the intact network %s should have been found, not recreated", rs["restored"], net.ID)
	}
	var restored *openstack.Image
	ims, err := g.Images(ctx, c.project)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ims {
		if ims[i].Name == "e2e-image-restored" {
			restored = &ims[i]
		}
	}
	if restored == nil || !strings.Contains(rs["restored"], restored.ID) {
		t.Fatalf("no image e2e-image-restored after the restore (restored = %q)", rs["restored"])
	}
	if restored.Checksum != im.Checksum || restored.MinRAMMegabytes != 32 || restored.Properties["hw_disk_bus"] != "virtio" ||
		!slices.Equal(restored.Tags, []string{"e2e"}) {
		t.Errorf("restored image %+v, want the original's checksum %s and properties", restored, im.Checksum)
	}
	rc, err := g.Download(ctx, restored.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored image data: %d bytes (err %v), want the original %d", len(got), err, len(data))
	}

	removeNetwork()
	removeImages("e2e-image-restored")
	rs = restoreWithCLI(t, k, cp, fmt.Sprintf("resource_type=%s,resource_id=%s,restore_name=e2e-image-restored", glanceType, im.ID))
	if rs["status"] != "success" {
		t.Fatalf("second restore: %v\ndaemon stderr: %s", rs, clip(a.stderr.String()))
	}
	nets, err := n.Networks(ctx, c.project)
	if err != nil {
		t.Fatal(err)
	}
	var back *openstack.Network
	for i := range nets {
		if nets[i].Name == netName {
			back = &nets[i]
		}
	}
	if back == nil || back.ID == net.ID || !strings.Contains(rs["restored"], back.ID) {
		t.Fatalf("network %s not recreated by the restore (restored = %q)", netName, rs["restored"])
	}
	subs, err := n.Subnets(ctx, back.ID)
	if err != nil || len(subs) != 1 || subs[0].CIDR != "10.88.0.0/24" || subs[0].Name != netName+"-v4" {
		t.Fatalf("recreated network's subnets %+v (err %v)", subs, err)
	}
	a.stop()
}
