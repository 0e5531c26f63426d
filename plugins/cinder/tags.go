package cinder

// Type is the protectable type this plugin serves.
const Type = "OS::Cinder::Volume"

// Tags a protection writes on its checkpoint, beside the rbd.* tags of
// the RBD read; Delete and Restore read them back, so they are part of
// the repository format (docs/openstack.md lists them).
const (
	TagProject    = "cinder.project"
	TagVolume     = "cinder.volume_id"
	TagVolumeName = "cinder.volume_name"
	TagSnapshot   = "cinder.snapshot_id"
	TagSizeGiB    = "cinder.size_gib"
	TagVolumeType = "cinder.volume_type"
	TagZone       = "cinder.availability_zone"
	TagBootable   = "cinder.bootable"
	TagMetadata   = "cinder.metadata" // the volume's metadata, as JSON
	// TagReadPath is how the data was read: ReadDirect or ReadAttach.
	TagReadPath = "cinder.read_path"
)

// Metadata keys cairn sets on the Cinder objects it creates. A snapshot
// is cairn's rotation snapshot for a repository when MetaManaged is
// "true" and MetaRepository names the repository.
const (
	MetaManaged    = "cairn.managed"
	MetaRepository = "cairn.repository"
	MetaJournal    = "cairn.journal" // the journal entry that created it
	// MetaTemporary marks a temporary volume of the attach read path; its
	// value is the protected volume's ID.
	MetaTemporary = "cairn.temporary_of"
)
