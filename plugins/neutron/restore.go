package neutron

import (
	"context"
	"errors"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"cairn/internal/openstack"
)

// Report says what a restore did: each entry is "KIND NAME (ID)", the
// ID being the object's in the cloud now.
type Report struct {
	// NetworkID is the network restored into (created or found).
	NetworkID string
	Created   []string
	Found     []string
}

func (r *Report) created(kind, name, id string) {
	r.Created = append(r.Created, fmt.Sprintf("%s %s (%s)", kind, name, id))
}

func (r *Report) found(kind, name, id string) {
	r.Found = append(r.Found, fmt.Sprintf("%s %s (%s)", kind, name, id))
}

// restorer maps saved IDs to the IDs of the objects in the cloud now.
type restorer struct {
	n       *openstack.Neutron
	project string
	rep     Report
	subnets map[string]string
	groups  map[string]string
}

// Restore recreates in project what of d is missing and leaves what
// exists. Each object is looked up by its saved ID, then by name (a
// subnet also by CIDR) among the project's; the order is the network,
// its subnets, the security groups and their rules, the routers and
// their interfaces, then the ports. It stops at the first error; the
// report then says what was done until then.
func Restore(ctx context.Context, n *openstack.Neutron, project string, d *Document) (Report, error) {
	r := &restorer{n: n, project: project, subnets: map[string]string{}, groups: map[string]string{}}
	err := r.run(ctx, d)
	return r.rep, err
}

func (r *restorer) run(ctx context.Context, d *Document) error {
	if err := r.network(ctx, d.Network); err != nil {
		return err
	}
	for _, s := range d.Subnets {
		if err := r.subnet(ctx, s); err != nil {
			return err
		}
	}
	if err := r.securityGroups(ctx, d.SecurityGroups); err != nil {
		return err
	}
	subnetByID := map[string]Subnet{}
	for _, s := range d.Subnets {
		subnetByID[s.ID] = s
	}
	for _, rt := range d.Routers {
		if err := r.router(ctx, rt, subnetByID); err != nil {
			return err
		}
	}
	for _, p := range d.Ports {
		if err := r.port(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (r *restorer) network(ctx context.Context, s Network) error {
	net, err := r.n.Network(ctx, s.ID)
	switch {
	case err == nil && net.ProjectID == r.project:
		r.rep.NetworkID = net.ID
		r.rep.found("network", net.Name, net.ID)
		return nil
	case err != nil && !errors.Is(err, openstack.ErrNotFound):
		return err
	}
	if s.Name != "" {
		nets, err := r.n.Networks(ctx, r.project)
		if err != nil {
			return err
		}
		for _, net := range nets {
			if net.Name == s.Name && net.ProjectID == r.project {
				r.rep.NetworkID = net.ID
				r.rep.found("network", net.Name, net.ID)
				return nil
			}
		}
	}
	up := s.AdminStateUp
	net, err = r.n.CreateNetwork(ctx, networks.CreateOpts{Name: s.Name, Description: s.Description, AdminStateUp: &up})
	if err != nil {
		return err
	}
	r.rep.NetworkID = net.ID
	r.rep.created("network", net.Name, net.ID)
	return nil
}

func (r *restorer) subnet(ctx context.Context, s Subnet) error {
	have, err := r.n.Subnets(ctx, r.rep.NetworkID)
	if err != nil {
		return err
	}
	for _, match := range []func(openstack.Subnet) bool{
		func(h openstack.Subnet) bool { return h.ID == s.ID },
		func(h openstack.Subnet) bool { return s.Name != "" && h.Name == s.Name },
		func(h openstack.Subnet) bool { return h.CIDR == s.CIDR },
	} {
		for _, h := range have {
			if match(h) {
				r.subnets[s.ID] = h.ID
				r.rep.found("subnet", h.Name, h.ID)
				return nil
			}
		}
	}
	dhcp := s.EnableDHCP
	o := subnets.CreateOpts{NetworkID: r.rep.NetworkID, Name: s.Name, Description: s.Description, CIDR: s.CIDR,
		IPVersion: ipVersion(s.IPVersion), EnableDHCP: &dhcp, DNSNameservers: s.DNSNameservers,
		IPv6AddressMode: s.IPv6AddressMode, IPv6RAMode: s.IPv6RAMode}
	gw := s.GatewayIP // "" saves a subnet without gateway
	o.GatewayIP = &gw
	for _, p := range s.AllocationPools {
		o.AllocationPools = append(o.AllocationPools, subnets.AllocationPool{Start: p.Start, End: p.End})
	}
	for _, h := range s.HostRoutes {
		o.HostRoutes = append(o.HostRoutes, subnets.HostRoute{DestinationCIDR: h.Destination, NextHop: h.NextHop})
	}
	sub, err := r.n.CreateSubnet(ctx, o)
	if err != nil {
		return err
	}
	r.subnets[s.ID] = sub.ID
	r.rep.created("subnet", sub.Name, sub.ID)
	return nil
}

// securityGroups finds or creates every group first, so that rules can
// refer to any of them, then adds the missing rules of created groups.
func (r *restorer) securityGroups(ctx context.Context, saved []SecurityGroup) error {
	if len(saved) == 0 {
		return nil
	}
	have, err := r.n.SecurityGroups(ctx)
	if err != nil {
		return err
	}
	var fresh []SecurityGroup
	for _, s := range saved {
		if id := findGroup(have, s, r.project); id != "" {
			r.groups[s.ID] = id
			r.rep.found("security group", s.Name, id)
			continue
		}
		st := s.Stateful
		g, err := r.n.CreateSecurityGroup(ctx, groups.CreateOpts{Name: s.Name, Description: s.Description, Stateful: &st})
		if err != nil {
			return err
		}
		r.groups[s.ID] = g.ID
		r.rep.created("security group", g.Name, g.ID)
		have = append(have, *g)
		fresh = append(fresh, s)
	}
	for _, s := range fresh {
		id := r.groups[s.ID]
		existing := map[string]bool{}
		for _, g := range have {
			if g.ID == id {
				for _, x := range g.Rules {
					existing[ruleKey(Rule{Direction: x.Direction, EtherType: x.EtherType, Protocol: x.Protocol,
						PortRangeMin: x.PortRangeMin, PortRangeMax: x.PortRangeMax, RemoteIPPrefix: x.RemoteIPPrefix,
						RemoteGroupID: x.RemoteGroupID})] = true
				}
			}
		}
		for _, x := range s.Rules {
			x.Description = ""
			if m, ok := r.groups[x.RemoteGroupID]; ok {
				x.RemoteGroupID = m
			}
			if existing[ruleKey(x)] {
				continue
			}
			_, err := r.n.CreateSecurityRule(ctx, rules.CreateOpts{SecGroupID: id, Direction: rules.RuleDirection(x.Direction),
				EtherType: rules.RuleEtherType(x.EtherType), Protocol: rules.RuleProtocol(x.Protocol),
				PortRangeMin: x.PortRangeMin, PortRangeMax: x.PortRangeMax, RemoteIPPrefix: x.RemoteIPPrefix,
				RemoteGroupID: x.RemoteGroupID})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func findGroup(have []openstack.SecurityGroup, s SecurityGroup, project string) string {
	for _, g := range have {
		if g.ID == s.ID && g.ProjectID == project {
			return g.ID
		}
	}
	for _, g := range have {
		if g.Name == s.Name && g.ProjectID == project {
			return g.ID
		}
	}
	return ""
}

// ruleKey identifies a rule by what it allows.
func ruleKey(x Rule) string {
	return fmt.Sprintf("%s|%s|%s|%d|%d|%s|%s", x.Direction, x.EtherType, x.Protocol, x.PortRangeMin, x.PortRangeMax,
		x.RemoteIPPrefix, x.RemoteGroupID)
}

func (r *restorer) router(ctx context.Context, s Router, subnetByID map[string]Subnet) error {
	have, err := r.n.Routers(ctx)
	if err != nil {
		return err
	}
	id := ""
	for _, h := range have {
		if h.ID == s.ID && h.ProjectID == r.project {
			id = h.ID
		}
	}
	for _, h := range have {
		if id == "" && s.Name != "" && h.Name == s.Name && h.ProjectID == r.project {
			id = h.ID
		}
	}
	if id != "" {
		r.rep.found("router", s.Name, id)
	} else {
		up := s.AdminStateUp
		o := routers.CreateOpts{Name: s.Name, Description: s.Description, AdminStateUp: &up}
		if s.ExternalNetworkID != "" {
			if _, err := r.n.Network(ctx, s.ExternalNetworkID); err == nil {
				o.GatewayInfo = &routers.GatewayInfo{NetworkID: s.ExternalNetworkID}
			}
		}
		rt, err := r.n.CreateRouter(ctx, o)
		if err != nil {
			return err
		}
		id = rt.ID
		r.rep.created("router", rt.Name, rt.ID)
	}
	onNet, err := r.n.Ports(ctx, r.rep.NetworkID)
	if err != nil {
		return err
	}
	for _, i := range s.Interfaces {
		subnet := r.subnets[i.SubnetID]
		if hasInterface(onNet, id, subnet) {
			r.rep.found("router interface", s.Name+" on subnet "+subnetByID[i.SubnetID].Name, subnet)
			continue
		}
		o := routers.AddInterfaceOpts{SubnetID: subnet}
		if i.IPAddress != subnetByID[i.SubnetID].GatewayIP {
			// Not the gateway address: the interface was a port of its own.
			p, err := r.n.CreatePort(ctx, ports.CreateOpts{NetworkID: r.rep.NetworkID,
				FixedIPs: []ports.IP{{SubnetID: subnet, IPAddress: i.IPAddress}}})
			if err != nil {
				return err
			}
			o = routers.AddInterfaceOpts{PortID: p.ID}
		}
		if err := r.n.AddRouterInterface(ctx, id, o); err != nil {
			return err
		}
		r.rep.created("router interface", s.Name+" on subnet "+subnetByID[i.SubnetID].Name, subnet)
	}
	return nil
}

func hasInterface(ps []openstack.Port, router, subnet string) bool {
	for _, p := range ps {
		if p.DeviceID != router {
			continue
		}
		for _, ip := range p.FixedIPs {
			if ip.SubnetID == subnet {
				return true
			}
		}
	}
	return false
}

func (r *restorer) port(ctx context.Context, s Port) error {
	have, err := r.n.Ports(ctx, r.rep.NetworkID)
	if err != nil {
		return err
	}
	for _, h := range have {
		if h.ID == s.ID || s.Name != "" && h.Name == s.Name {
			r.rep.found("port", h.Name, h.ID)
			return nil
		}
	}
	up := s.AdminStateUp
	o := ports.CreateOpts{NetworkID: r.rep.NetworkID, Name: s.Name, Description: s.Description, AdminStateUp: &up,
		MACAddress: s.MACAddress}
	ips := []ports.IP{}
	for _, ip := range s.FixedIPs {
		ips = append(ips, ports.IP{SubnetID: r.subnets[ip.SubnetID], IPAddress: ip.IPAddress})
	}
	o.FixedIPs = ips
	sgs := []string{}
	for _, g := range s.SecurityGroups {
		sgs = append(sgs, r.groups[g])
	}
	o.SecurityGroups = &sgs
	p, err := r.n.CreatePort(ctx, o)
	if err != nil {
		return err
	}
	r.rep.created("port", p.Name, p.ID)
	return nil
}

func ipVersion(v int) gophercloud.IPVersion {
	if v == 6 {
		return gophercloud.IPv6
	}
	return gophercloud.IPv4
}
