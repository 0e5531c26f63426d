// Package nova protects OpenStack Nova servers (OS::Nova::Server) whose
// volumes Cinder keeps on Ceph RBD.
//
// A protection saves the server's definition (flavor, image, key,
// security groups, ports and fixed IPs, metadata, block-device mapping
// with device names, availability zone) as a small JSON manifest, the
// data of the server's own repository checkpoint, and protects each
// attached volume through the Cinder plugin (package cinder, called as a
// library): one repository checkpoint per volume, named in the manifest.
// An ephemeral root disk that Nova keeps in RBD (images_type=rbd:
// POOL/<server id>_disk) is read directly with package backup.
//
// Every manifest records the consistency level the volumes were taken
// at: "consistent" (one point in time for all of them) or "sequential"
// (one after another), and why. docs/openstack.md describes the format.
//
// A restore recreates the volumes through the Cinder plugin, boots a new
// server from the restored root volume with the saved definition,
// attaches the data volumes in their saved order, waits for ACTIVE, and
// reports what could not be honoured. Everything it creates is
// journaled first and removed again when it fails.
package nova
