// Package image is the appliance side of the cairn Glance image: it reads
// the configuration the cloud hands a booting appliance and turns it into
// cairn serve's config file and the secret files it names. The image itself
// (packages, systemd units, build script) lives beside it in this folder;
// docs/appliance.md describes both.
//
// Glossary:
//   - seed: what one cloud source gave: user data, the server UUID and the
//     name of the source;
//   - config drive: the ISO 9660 (or VFAT) drive Nova attaches with label
//     "config-2" (openstack/latest/user_data, openstack/latest/meta_data.json);
//   - NoCloud drive: a drive labelled "cidata" with user-data and meta-data
//     (instance-id), as cloud-init's NoCloud source reads it;
//   - metadata service: http://169.254.169.254/openstack/latest/, used when
//     no drive is attached;
//   - user data: a JSON object (UserData) holding cairn's config and the
//     secrets (ceph keyring, Keystone and repository passwords);
//   - data volume: a Cinder volume, named by its ID in the user data and
//     found by its serial under /dev/disk/by-id, that holds the state and
//     the local indexes so a new root disk loses nothing.
package image
