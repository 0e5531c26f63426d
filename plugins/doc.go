// Package plugins defines the contract between the appliance and the code
// that protects one kind of resource, and holds the registry of plugins.
//
// # Glossary
//
//   - Protectable type: a Karbor resource type name such as
//     "OS::Cairn::File" or "OS::Cinder::Volume".
//   - Instance: one protectable resource of a type (a file, an RBD image),
//     named by an ID that is safe in a URL path segment (a UUID).
//   - Plugin: the code that lists instances of one type and protects,
//     restores, deletes and verifies them (ProtectionPlugin).
//   - Backup ID: the repository checkpoint a plugin made for one resource;
//     the appliance stores it and hands it back for restore/delete/verify.
//
// See docs/plugins.md for the contract written for third parties.
package plugins
