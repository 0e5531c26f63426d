// Package neutron protects OpenStack Neutron networks
// (OS::Neutron::Network) as metadata: the network, its subnets, the
// routers with an interface on it, its ports and the security groups
// those ports use (with their rules), saved as one JSON Document, the
// data of the checkpoint.
//
// A restore recreates in the project what is missing and leaves what
// exists: each saved object is looked up by its ID, then by its name
// (subnets also by CIDR); only objects found neither way are created,
// with the saved attributes and the new IDs of the objects they refer
// to. It reports what it created and what it found (Report).
// docs/openstack.md describes it.
//
// Glossary:
//   - document: the JSON a checkpoint holds (Document, version 1).
//   - interface: a router's port on one of the network's subnets.
package neutron
