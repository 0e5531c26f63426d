package neutron

import (
	"context"
	"sort"
	"strings"

	"cairn/internal/openstack"
)

// neutronOwned are device owners of ports Neutron makes itself.
func neutronOwned(owner string) bool {
	return strings.HasPrefix(owner, "network:")
}

// collect reads the network's document from Neutron.
func collect(ctx context.Context, n *openstack.Neutron, net *openstack.Network) (*Document, error) {
	d := &Document{Version: DocumentVersion, Network: Network{ID: net.ID, Name: net.Name, Description: net.Description,
		AdminStateUp: net.AdminStateUp, Shared: net.Shared, Tags: net.Tags}}
	subs, err := n.Subnets(ctx, net.ID)
	if err != nil {
		return nil, err
	}
	for _, s := range subs {
		sub := Subnet{ID: s.ID, Name: s.Name, Description: s.Description, IPVersion: s.IPVersion, CIDR: s.CIDR,
			GatewayIP: s.GatewayIP, EnableDHCP: s.EnableDHCP, DNSNameservers: s.DNSNameservers,
			IPv6AddressMode: s.IPv6AddressMode, IPv6RAMode: s.IPv6RAMode}
		for _, p := range s.AllocationPools {
			sub.AllocationPools = append(sub.AllocationPools, Pool{Start: p.Start, End: p.End})
		}
		for _, r := range s.HostRoutes {
			sub.HostRoutes = append(sub.HostRoutes, Route{Destination: r.DestinationCIDR, NextHop: r.NextHop})
		}
		d.Subnets = append(d.Subnets, sub)
	}
	ports, err := n.Ports(ctx, net.ID)
	if err != nil {
		return nil, err
	}
	ifaces := map[string][]Interface{} // by router ID
	usedGroups := map[string]bool{}
	for _, p := range ports {
		if strings.HasPrefix(p.DeviceOwner, "network:router_interface") {
			for _, ip := range p.FixedIPs {
				ifaces[p.DeviceID] = append(ifaces[p.DeviceID], Interface{PortID: p.ID, SubnetID: ip.SubnetID, IPAddress: ip.IPAddress})
			}
			continue
		}
		if neutronOwned(p.DeviceOwner) {
			continue
		}
		port := Port{ID: p.ID, Name: p.Name, Description: p.Description, AdminStateUp: p.AdminStateUp,
			MACAddress: p.MACAddress, SecurityGroups: append([]string{}, p.SecurityGroups...),
			DeviceID: p.DeviceID, DeviceOwner: p.DeviceOwner}
		for _, ip := range p.FixedIPs {
			port.FixedIPs = append(port.FixedIPs, FixedIP{SubnetID: ip.SubnetID, IPAddress: ip.IPAddress})
		}
		for _, g := range p.SecurityGroups {
			usedGroups[g] = true
		}
		d.Ports = append(d.Ports, port)
	}
	if len(ifaces) > 0 {
		rs, err := n.Routers(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if len(ifaces[r.ID]) == 0 {
				continue
			}
			d.Routers = append(d.Routers, Router{ID: r.ID, Name: r.Name, Description: r.Description,
				AdminStateUp: r.AdminStateUp, ExternalNetworkID: r.GatewayInfo.NetworkID, Interfaces: ifaces[r.ID]})
		}
	}
	if len(usedGroups) > 0 {
		gs, err := n.SecurityGroups(ctx)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if !usedGroups[g.ID] {
				continue
			}
			sg := SecurityGroup{ID: g.ID, Name: g.Name, Description: g.Description, Stateful: g.Stateful, Rules: []Rule{}}
			for _, r := range g.Rules {
				sg.Rules = append(sg.Rules, Rule{Direction: r.Direction, EtherType: r.EtherType, Protocol: r.Protocol,
					PortRangeMin: r.PortRangeMin, PortRangeMax: r.PortRangeMax, RemoteIPPrefix: r.RemoteIPPrefix,
					RemoteGroupID: r.RemoteGroupID, Description: r.Description})
			}
			sort.Slice(sg.Rules, func(i, j int) bool { return ruleKey(sg.Rules[i]) < ruleKey(sg.Rules[j]) })
			d.SecurityGroups = append(d.SecurityGroups, sg)
		}
	}
	sort.Slice(d.Ports, func(i, j int) bool { return d.Ports[i].ID < d.Ports[j].ID })
	sort.Slice(d.Routers, func(i, j int) bool { return d.Routers[i].ID < d.Routers[j].ID })
	sort.Slice(d.SecurityGroups, func(i, j int) bool { return d.SecurityGroups[i].ID < d.SecurityGroups[j].ID })
	return d, nil
}
