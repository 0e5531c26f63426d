package cinder

import (
	"context"
	"time"
)

// Kinds of journal entries: what cairn is about to create in the cloud.
const (
	KindSnapshot   = "snapshot"
	KindAttachment = "attachment"
	KindVolume     = "volume"
	// KindTempVolume is a temporary volume made from a cairn snapshot to
	// be read through the appliance's own attachment (VolumeID: the
	// protected volume; Server: the appliance's server).
	KindTempVolume = "temp_volume"
	// KindServerAttachment is a volume attached to the appliance's own
	// server through Nova (VolumeID: the volume; Server: the server).
	KindServerAttachment = "server_attachment"
)

// Entry records one object cairn creates in the cloud, before it does.
type Entry struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Project string `json:"project"`
	// VolumeID is the volume snapshotted or attached; for KindVolume the
	// new volume once Cinder has named it ("" before).
	VolumeID string `json:"volume_id,omitempty"`
	Name     string `json:"name,omitempty"`
	// Server is the appliance's Nova server a volume is attached to
	// (KindTempVolume, KindServerAttachment).
	Server  string    `json:"server_id,omitempty"`
	Created time.Time `json:"created"`
}

// Journal keeps the entries durably (the appliance keeps them in its
// state database).
//
// Contract: Record is durable when it returns nil, so that a crash right
// after leaves the entry; Record of an existing ID replaces it; Forget of
// a missing ID succeeds; Entries returns the project's entries.
type Journal interface {
	Record(ctx context.Context, e Entry) error
	Forget(ctx context.Context, id string) error
	Entries(ctx context.Context, project string) ([]Entry, error)
}
