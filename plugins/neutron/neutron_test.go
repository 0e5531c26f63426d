package neutron

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"cairn/dedup"
	"cairn/internal/openstack"
	"cairn/internal/openstack/ostest"
	"cairn/plugins"
)

// topology is what the test builds in the admin project.
type topology struct {
	net, subnet, router, group, port string
	names                            map[string]string
}

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// build makes a network with a subnet, a router interface, a security
// group with two rules and a port using it; cleanup removes whatever of
// it (or of its restored copies, found by name) exists when the test ends.
func build(t *testing.T, n *openstack.Neutron) topology {
	t.Helper()
	ctx := context.Background()
	s := suffix()
	tp := topology{names: map[string]string{"net": "cairn-net-" + s, "subnet": "cairn-subnet-" + s,
		"router": "cairn-router-" + s, "group": "cairn-sg-" + s, "port": "cairn-port-" + s}}
	t.Cleanup(func() { teardown(t, n, tp.names) })
	tp.net = must[*openstack.Network](t)(n.CreateNetwork(ctx, networks.CreateOpts{Name: tp.names["net"], Description: "cairn test"})).ID
	gw := "10.77.0.1"
	tp.subnet = must[*openstack.Subnet](t)(n.CreateSubnet(ctx, subnets.CreateOpts{NetworkID: tp.net, Name: tp.names["subnet"],
		CIDR: "10.77.0.0/24", IPVersion: 4, GatewayIP: &gw, DNSNameservers: []string{"10.77.0.2"},
		AllocationPools: []subnets.AllocationPool{{Start: "10.77.0.10", End: "10.77.0.200"}}})).ID
	tp.router = must[*openstack.Router](t)(n.CreateRouter(ctx, routers.CreateOpts{Name: tp.names["router"]})).ID
	if err := n.AddRouterInterface(ctx, tp.router, routers.AddInterfaceOpts{SubnetID: tp.subnet}); err != nil {
		t.Fatal(err)
	}
	tp.group = must[*openstack.SecurityGroup](t)(n.CreateSecurityGroup(ctx, groups.CreateOpts{Name: tp.names["group"], Description: "ssh"})).ID
	for _, o := range []rules.CreateOpts{
		{SecGroupID: tp.group, Direction: "ingress", EtherType: "IPv4", Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "192.0.2.0/24"},
		{SecGroupID: tp.group, Direction: "ingress", EtherType: "IPv4", RemoteGroupID: tp.group},
	} {
		must[*openstack.SecurityRule](t)(n.CreateSecurityRule(ctx, o))
	}
	sgs := []string{tp.group}
	tp.port = must[*openstack.Port](t)(n.CreatePort(ctx, ports.CreateOpts{NetworkID: tp.net, Name: tp.names["port"],
		FixedIPs: []ports.IP{{SubnetID: tp.subnet, IPAddress: "10.77.0.50"}}, SecurityGroups: &sgs})).ID
	return tp
}

// teardown deletes the objects named names, in dependency order.
func teardown(t *testing.T, n *openstack.Neutron, names map[string]string) {
	ctx := context.Background()
	sc := n.ServiceClient()
	nets, _ := n.Networks(ctx, "")
	for _, net := range nets {
		if net.Name != names["net"] {
			continue
		}
		ps, _ := n.Ports(ctx, net.ID)
		for _, p := range ps {
			if strings.HasPrefix(p.DeviceOwner, "network:router_interface") {
				_, _ = routers.RemoveInterface(ctx, sc, p.DeviceID, routers.RemoveInterfaceOpts{PortID: p.ID}).Extract()
			} else if !strings.HasPrefix(p.DeviceOwner, "network:") {
				_ = ports.Delete(ctx, sc, p.ID).ExtractErr()
			}
		}
		ss, _ := n.Subnets(ctx, net.ID)
		for _, s := range ss {
			_ = subnets.Delete(ctx, sc, s.ID).ExtractErr()
		}
		if err := networks.Delete(ctx, sc, net.ID).ExtractErr(); err != nil {
			t.Errorf("clean up network %s: %v", net.ID, err)
		}
	}
	rs, _ := n.Routers(ctx)
	for _, r := range rs {
		if r.Name == names["router"] {
			_ = routers.Delete(ctx, sc, r.ID).ExtractErr()
		}
	}
	gs, _ := n.SecurityGroups(ctx)
	for _, g := range gs {
		if g.Name == names["group"] {
			_ = groups.Delete(ctx, sc, g.ID).ExtractErr()
		}
	}
}

func kinds(entries []string) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e[:strings.LastIndex(e[:strings.Index(e, " cairn-")+1], " ")])
	}
	sort.Strings(out)
	return out
}

// TestNeutronProtectRestore against the test cloud's neutron-server:
// protect a network; restoring while everything exists creates nothing;
// after the port is deleted only the port comes back; after everything
// is deleted, everything comes back with the saved attributes.
func TestNeutronProtectRestore(t *testing.T) {
	ostest.Env(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true, WaitTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cloud.Neutron(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Cloud: cloud})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := dedup.Init(ctx, filepath.Join(t.TempDir(), "repo"), dedup.InitOptions{}, nil, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	tp := build(t, n)
	project := must[*openstack.Network](t)(n.Network(ctx, tp.net)).ProjectID

	res, err := p.Instance(ctx, project, tp.net)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Project: project, Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ctx, repo, b.ID); err != nil {
		t.Fatal(err)
	}
	d, err := ReadDocument(ctx, repo, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Subnets) != 1 || len(d.Routers) != 1 || len(d.Routers[0].Interfaces) != 1 || len(d.Ports) != 1 ||
		len(d.SecurityGroups) != 1 || d.Ports[0].FixedIPs[0].IPAddress != "10.77.0.50" {
		t.Fatalf("saved document %+v", d)
	}
	saved := d.SecurityGroups[0].Rules

	restore := func() Report {
		t.Helper()
		rep, err := Restore(ctx, n, project, d)
		if err != nil {
			t.Fatalf("restore: %v (report %+v)", err, rep)
		}
		return rep
	}
	if rep := restore(); len(rep.Created) != 0 || rep.NetworkID != tp.net || len(rep.Found) != 6 {
		t.Fatalf("restore over the intact network: %+v", rep)
	}

	if err := ports.Delete(ctx, n.ServiceClient(), tp.port).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if rep := restore(); !slices.Equal(kinds(rep.Created), []string{"port"}) {
		t.Fatalf("restore after deleting the port created %v", rep.Created)
	}

	teardown(t, n, tp.names)
	id, err := p.Restore(ctx, repo, plugins.RestoreRequest{Project: project, Resource: res, BackupID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if id == tp.net {
		t.Fatal("the deleted network's ID came back")
	}
	again := restore()
	if len(again.Created) != 0 || again.NetworkID != id {
		t.Fatalf("a second restore after the full one: %+v", again)
	}
	// The restored network, compared with the saved document.
	net := must[*openstack.Network](t)(n.Network(ctx, id))
	subs := must[[]openstack.Subnet](t)(n.Subnets(ctx, id))
	if net.Name != tp.names["net"] || net.Description != "cairn test" || len(subs) != 1 || subs[0].CIDR != "10.77.0.0/24" ||
		subs[0].GatewayIP != "10.77.0.1" || !slices.Equal(subs[0].DNSNameservers, []string{"10.77.0.2"}) ||
		subs[0].AllocationPools[0].Start != "10.77.0.10" {
		t.Fatalf("restored network %+v subnets %+v", net, subs)
	}
	ps := must[[]openstack.Port](t)(n.Ports(ctx, id))
	var port *openstack.Port
	routerIfaces := 0
	for i := range ps {
		switch {
		case ps[i].Name == tp.names["port"]:
			port = &ps[i]
		case strings.HasPrefix(ps[i].DeviceOwner, "network:router_interface"):
			routerIfaces++
		}
	}
	if port == nil || port.FixedIPs[0].IPAddress != "10.77.0.50" || port.MACAddress != d.Ports[0].MACAddress || routerIfaces != 1 {
		t.Fatalf("restored ports %+v", ps)
	}
	gs := must[[]openstack.SecurityGroup](t)(n.SecurityGroups(ctx))
	var group *openstack.SecurityGroup
	for i := range gs {
		if gs[i].Name == tp.names["group"] {
			group = &gs[i]
		}
	}
	if group == nil || !slices.Equal(port.SecurityGroups, []string{group.ID}) {
		t.Fatalf("restored port's groups %v, group %+v", port.SecurityGroups, group)
	}
	got := map[string]bool{}
	for _, r := range group.Rules {
		rid := r.RemoteGroupID
		if rid == group.ID {
			rid = "self"
		}
		got[ruleKey(Rule{Direction: r.Direction, EtherType: r.EtherType, Protocol: r.Protocol, PortRangeMin: r.PortRangeMin,
			PortRangeMax: r.PortRangeMax, RemoteIPPrefix: r.RemoteIPPrefix, RemoteGroupID: rid})] = true
	}
	for _, r := range saved {
		if r.RemoteGroupID == tp.group {
			r.RemoteGroupID = "self"
		}
		r.Description = ""
		if !got[ruleKey(r)] {
			t.Fatalf("restored group lacks rule %+v; has %v", r, got)
		}
	}
}

// TestNeutronProjectIsolation: a network of the admin project is not
// another project's instance.
func TestNeutronProjectIsolation(t *testing.T) {
	ostest.Env(t)
	ctx := context.Background()
	cloud, err := openstack.New(openstack.Config{FromEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cloud.Neutron(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := New(Config{Cloud: cloud})
	names := map[string]string{"net": "cairn-net-" + suffix()}
	t.Cleanup(func() { teardown(t, n, names) })
	net := must[*openstack.Network](t)(n.CreateNetwork(ctx, networks.CreateOpts{Name: names["net"]}))
	other := ostest.OtherProject(t)
	if _, err := p.Instance(ctx, other.ID, net.ID); !errors.Is(err, plugins.ErrInstanceNotFound) {
		t.Fatalf("Instance in another project: %v", err)
	}
	rs, err := p.Instances(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == net.ID {
			t.Fatalf("another project lists network %s", net.ID)
		}
	}
	rs, err = p.Instances(ctx, net.ProjectID)
	if err != nil || !slices.ContainsFunc(rs, func(r plugins.Resource) bool { return r.ID == net.ID }) {
		t.Fatalf("the owner's instances %v lack %s: %v", rs, net.ID, err)
	}
}
