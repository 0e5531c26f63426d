package openstack

import (
	"context"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// Neutron's objects are gophercloud's.
type (
	Network       = networks.Network
	Subnet        = subnets.Subnet
	Port          = ports.Port
	Router        = routers.Router
	SecurityGroup = groups.SecGroup
	SecurityRule  = rules.SecGroupRule
)

// Neutron is the network API of one project. Safe for concurrent use.
type Neutron struct {
	sc *gophercloud.ServiceClient
}

// ServiceClient is the raw client, for what this type does not wrap.
func (n *Neutron) ServiceClient() *gophercloud.ServiceClient { return n.sc }

// Networks lists the networks the project sees (its own, shared and
// external ones); projectID non-empty keeps those it owns.
func (n *Neutron) Networks(ctx context.Context, projectID string) ([]Network, error) {
	pages, err := networks.List(n.sc, networks.ListOpts{ProjectID: projectID}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list networks")
	}
	out, err := networks.ExtractNetworks(pages)
	return out, wrap(err, "list networks")
}

// Network returns network id; ErrNotFound when the project does not see it.
func (n *Neutron) Network(ctx context.Context, id string) (*Network, error) {
	v, err := networks.Get(ctx, n.sc, id).Extract()
	return v, wrap(err, "network %s", id)
}

// Subnets lists the subnets of network.
func (n *Neutron) Subnets(ctx context.Context, network string) ([]Subnet, error) {
	pages, err := subnets.List(n.sc, subnets.ListOpts{NetworkID: network}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list subnets of network %s", network)
	}
	out, err := subnets.ExtractSubnets(pages)
	return out, wrap(err, "list subnets of network %s", network)
}

// Ports lists the ports on network.
func (n *Neutron) Ports(ctx context.Context, network string) ([]Port, error) {
	pages, err := ports.List(n.sc, ports.ListOpts{NetworkID: network}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list ports of network %s", network)
	}
	out, err := ports.ExtractPorts(pages)
	return out, wrap(err, "list ports of network %s", network)
}

// Routers lists the project's routers.
func (n *Neutron) Routers(ctx context.Context) ([]Router, error) {
	pages, err := routers.List(n.sc, routers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list routers")
	}
	out, err := routers.ExtractRouters(pages)
	return out, wrap(err, "list routers")
}

// SecurityGroups lists the security groups the project sees, with
// their rules.
func (n *Neutron) SecurityGroups(ctx context.Context) ([]SecurityGroup, error) {
	pages, err := groups.List(n.sc, groups.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list security groups")
	}
	out, err := groups.ExtractGroups(pages)
	return out, wrap(err, "list security groups")
}

// CreateNetwork creates a network.
func (n *Neutron) CreateNetwork(ctx context.Context, o networks.CreateOpts) (*Network, error) {
	v, err := networks.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create network %q", o.Name)
}

// CreateSubnet creates a subnet.
func (n *Neutron) CreateSubnet(ctx context.Context, o subnets.CreateOpts) (*Subnet, error) {
	v, err := subnets.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create subnet %q (%s) on network %s", o.Name, o.CIDR, o.NetworkID)
}

// CreatePort creates a port.
func (n *Neutron) CreatePort(ctx context.Context, o ports.CreateOpts) (*Port, error) {
	v, err := ports.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create port %q on network %s", o.Name, o.NetworkID)
}

// CreateRouter creates a router.
func (n *Neutron) CreateRouter(ctx context.Context, o routers.CreateOpts) (*Router, error) {
	v, err := routers.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create router %q", o.Name)
}

// AddRouterInterface connects router to subnet (the subnet's gateway
// address) or to port.
func (n *Neutron) AddRouterInterface(ctx context.Context, router string, o routers.AddInterfaceOpts) error {
	_, err := routers.AddInterface(ctx, n.sc, router, o).Extract()
	return wrap(err, "add an interface to router %s (subnet %q, port %q)", router, o.SubnetID, o.PortID)
}

// CreateSecurityGroup creates a security group (Neutron adds its two
// default egress rules).
func (n *Neutron) CreateSecurityGroup(ctx context.Context, o groups.CreateOpts) (*SecurityGroup, error) {
	v, err := groups.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create security group %q", o.Name)
}

// CreateSecurityRule creates a security group rule.
func (n *Neutron) CreateSecurityRule(ctx context.Context, o rules.CreateOpts) (*SecurityRule, error) {
	v, err := rules.Create(ctx, n.sc, o).Extract()
	return v, wrap(err, "create a rule of security group %s", o.SecGroupID)
}
