package nova

import (
	"encoding/json"
	"fmt"
)

// Type is the protectable type this plugin serves.
const Type = "OS::Nova::Server"

// Tags on a server's repository checkpoint (its data is the manifest).
const (
	TagProject     = "nova.project"
	TagServer      = "nova.server_id"
	TagServerName  = "nova.server_name"
	TagConsistency = "nova.consistency" // Consistent or Sequential
	// TagPartOf is set on each volume checkpoint a server protection
	// made: the server's ID.
	TagPartOf = "nova.part_of"
)

// Consistency levels a manifest records.
const (
	Consistent = "consistent"
	Sequential = "sequential"
)

// ManifestVersion is the manifest format written.
const ManifestVersion = 1

// Manifest is a server's saved definition: the data of its checkpoint.
type Manifest struct {
	Version     int             `json:"version"`
	Server      Definition      `json:"server"`
	Volumes     []VolumeBackup  `json:"volumes"`
	Ephemeral   *DiskBackup     `json:"ephemeral_disk,omitempty"`
	Consistency ConsistencyNote `json:"consistency"`
}

// Definition is what a new server needs to be the saved one again.
type Definition struct {
	ID               string              `json:"id"`
	Name             string              `json:"name"`
	Project          string              `json:"project"`
	Flavor           Flavor              `json:"flavor"`
	ImageID          string              `json:"image_id,omitempty"`
	KeyName          string              `json:"key_name,omitempty"`
	SecurityGroups   []string            `json:"security_groups,omitempty"`
	Ports            []Port              `json:"ports,omitempty"`
	Addresses        map[string][]string `json:"addresses,omitempty"`
	Metadata         map[string]string   `json:"metadata,omitempty"`
	AvailabilityZone string              `json:"availability_zone,omitempty"`
	RootDevice       string              `json:"root_device_name,omitempty"`
}

// Flavor is the server's flavor as Nova embedded it.
type Flavor struct {
	Name  string `json:"name"`
	VCPUs int    `json:"vcpus"`
	RAM   int    `json:"ram_mib"`
	Disk  int    `json:"disk_gib"`
}

// Port is one network interface.
type Port struct {
	PortID   string   `json:"port_id"`
	Network  string   `json:"network_id"`
	MAC      string   `json:"mac_address,omitempty"`
	FixedIPs []string `json:"fixed_ips,omitempty"`
}

// VolumeBackup is one attached volume, in boot order (the first is the
// root volume when the server boots from a volume).
type VolumeBackup struct {
	VolumeID            string `json:"volume_id"`
	Device              string `json:"device"`
	BootIndex           int    `json:"boot_index"` // 0 for the root volume, -1 otherwise
	DeleteOnTermination bool   `json:"delete_on_termination,omitempty"`
	BackupID            string `json:"backup_id"`
}

// DiskBackup is an RBD-backed ephemeral root disk read directly.
type DiskBackup struct {
	Pool     string `json:"pool"`
	Image    string `json:"image"`
	BackupID string `json:"backup_id"`
}

// ConsistencyNote says at which level the volumes were taken and why.
type ConsistencyNote struct {
	Level  string `json:"level"`
	Method string `json:"method"`
	Reason string `json:"reason"`
}

// maxManifest bounds a manifest read back from a repository.
const maxManifest = 1 << 20

// parseManifest decodes and checks a manifest read from a checkpoint.
func parseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%d bytes, more than %d: %w", len(b), maxManifest, ErrManifest)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrManifest)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("version %d, this cairn reads %d: %w", m.Version, ManifestVersion, ErrManifest)
	}
	if m.Server.ID == "" {
		return nil, fmt.Errorf("no server ID: %w", ErrManifest)
	}
	if m.Consistency.Level != Consistent && m.Consistency.Level != Sequential {
		return nil, fmt.Errorf("consistency level %q: %w", m.Consistency.Level, ErrManifest)
	}
	roots := 0
	for i, v := range m.Volumes {
		if v.VolumeID == "" || v.BackupID == "" {
			return nil, fmt.Errorf("volume %d has no ID or backup: %w", i, ErrManifest)
		}
		if v.BootIndex == 0 {
			roots++
		}
	}
	if roots > 1 || roots == 1 && m.Volumes[0].BootIndex != 0 {
		return nil, fmt.Errorf("the root volume must be the first and only one with boot index 0: %w", ErrManifest)
	}
	if m.Ephemeral != nil && m.Ephemeral.BackupID == "" {
		return nil, fmt.Errorf("ephemeral disk without a backup: %w", ErrManifest)
	}
	return &m, nil
}
