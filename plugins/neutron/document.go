package neutron

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Type is the protectable type this plugin serves.
const Type = "OS::Neutron::Network"

// Tags a protection writes on its checkpoint (docs/openstack.md).
const (
	TagProject     = "neutron.project"
	TagNetwork     = "neutron.network_id"
	TagNetworkName = "neutron.network_name"
)

// DocumentVersion is the version of Document this package writes and
// reads.
const DocumentVersion = 1

// maxDocument bounds the document a restore reads from a checkpoint.
const maxDocument = 64 << 20

// Document is what a checkpoint holds of a network: its data, as JSON.
// It is part of the repository format.
type Document struct {
	Version        int             `json:"version"`
	Network        Network         `json:"network"`
	Subnets        []Subnet        `json:"subnets"`
	Routers        []Router        `json:"routers"`
	Ports          []Port          `json:"ports"`
	SecurityGroups []SecurityGroup `json:"security_groups"`
}

// Network is the saved network.
type Network struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Description  string   `json:"description,omitempty"`
	AdminStateUp bool     `json:"admin_state_up"`
	Shared       bool     `json:"shared,omitempty"`
	Tags         []string `json:"tags,omitempty"`
}

// Pool is an allocation pool of a subnet.
type Pool struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Route is a host route of a subnet.
type Route struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// Subnet is a saved subnet of the network.
type Subnet struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	IPVersion       int      `json:"ip_version"`
	CIDR            string   `json:"cidr"`
	GatewayIP       string   `json:"gateway_ip,omitempty"`
	EnableDHCP      bool     `json:"enable_dhcp"`
	DNSNameservers  []string `json:"dns_nameservers,omitempty"`
	AllocationPools []Pool   `json:"allocation_pools,omitempty"`
	HostRoutes      []Route  `json:"host_routes,omitempty"`
	IPv6AddressMode string   `json:"ipv6_address_mode,omitempty"`
	IPv6RAMode      string   `json:"ipv6_ra_mode,omitempty"`
}

// FixedIP is an address of a port on a subnet.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// Interface is a router's port on one of the network's subnets.
type Interface struct {
	PortID    string `json:"port_id"`
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// Router is a saved router with an interface on the network.
type Router struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Description  string `json:"description,omitempty"`
	AdminStateUp bool   `json:"admin_state_up"`
	// ExternalNetworkID is the router's gateway network ("" for none).
	ExternalNetworkID string      `json:"external_network_id,omitempty"`
	Interfaces        []Interface `json:"interfaces"`
}

// Port is a saved port of the network other than Neutron's own (DHCP,
// router interfaces and gateways, floating IPs).
type Port struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description,omitempty"`
	AdminStateUp   bool      `json:"admin_state_up"`
	MACAddress     string    `json:"mac_address"`
	FixedIPs       []FixedIP `json:"fixed_ips"`
	SecurityGroups []string  `json:"security_groups"`
	// DeviceID and DeviceOwner say what used the port (a server); a
	// restore does not set them: attaching is the server's restore.
	DeviceID    string `json:"device_id,omitempty"`
	DeviceOwner string `json:"device_owner,omitempty"`
}

// Rule is a saved security group rule.
type Rule struct {
	Direction      string `json:"direction"`
	EtherType      string `json:"ethertype"`
	Protocol       string `json:"protocol,omitempty"`
	PortRangeMin   int    `json:"port_range_min,omitempty"`
	PortRangeMax   int    `json:"port_range_max,omitempty"`
	RemoteIPPrefix string `json:"remote_ip_prefix,omitempty"`
	RemoteGroupID  string `json:"remote_group_id,omitempty"`
	Description    string `json:"description,omitempty"`
}

// SecurityGroup is a saved security group used by a saved port.
type SecurityGroup struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Stateful    bool   `json:"stateful"`
	Rules       []Rule `json:"rules"`
}

// DecodeDocument parses and checks a checkpoint's document: it comes
// from the repository, so every reference a restore follows is checked.
func DecodeDocument(b []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("network document: %w", err)
	}
	if d.Version != DocumentVersion {
		return nil, fmt.Errorf("network document version %d; this cairn reads version %d", d.Version, DocumentVersion)
	}
	if d.Network.ID == "" {
		return nil, fmt.Errorf("network document: no network ID")
	}
	subnets := map[string]bool{}
	for _, s := range d.Subnets {
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil || s.ID == "" {
			return nil, fmt.Errorf("network document: subnet %q: ID and a CIDR are required (%q)", s.ID, s.CIDR)
		}
		if want := map[int]bool{4: p.Addr().Is4(), 6: p.Addr().Is6()}; !want[s.IPVersion] {
			return nil, fmt.Errorf("network document: subnet %s: ip_version %d for %s", s.ID, s.IPVersion, s.CIDR)
		}
		subnets[s.ID] = true
	}
	groups := map[string]bool{}
	for _, g := range d.SecurityGroups {
		if g.ID == "" || g.Name == "" {
			return nil, fmt.Errorf("network document: a security group without ID or name")
		}
		groups[g.ID] = true
		for _, r := range g.Rules {
			if (r.Direction != "ingress" && r.Direction != "egress") || (r.EtherType != "IPv4" && r.EtherType != "IPv6") {
				return nil, fmt.Errorf("network document: security group %s: rule %s/%s", g.ID, r.Direction, r.EtherType)
			}
			if r.PortRangeMin < 0 || r.PortRangeMax < 0 || r.PortRangeMax > 65535 || r.PortRangeMin > 65535 {
				return nil, fmt.Errorf("network document: security group %s: port range %d-%d", g.ID, r.PortRangeMin, r.PortRangeMax)
			}
		}
	}
	for _, r := range d.Routers {
		if r.ID == "" {
			return nil, fmt.Errorf("network document: a router without ID")
		}
		for _, i := range r.Interfaces {
			if !subnets[i.SubnetID] {
				return nil, fmt.Errorf("network document: router %s: interface on subnet %q not in the document", r.ID, i.SubnetID)
			}
		}
	}
	for _, p := range d.Ports {
		if p.ID == "" {
			return nil, fmt.Errorf("network document: a port without ID")
		}
		for _, ip := range p.FixedIPs {
			if !subnets[ip.SubnetID] {
				return nil, fmt.Errorf("network document: port %s: address on subnet %q not in the document", p.ID, ip.SubnetID)
			}
		}
		for _, g := range p.SecurityGroups {
			if !groups[g] {
				return nil, fmt.Errorf("network document: port %s: security group %q not in the document", p.ID, g)
			}
		}
	}
	return &d, nil
}
