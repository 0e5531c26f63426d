package glance

// Type is the protectable type this plugin serves.
const Type = "OS::Glance::Image"

// Tags a protection writes on its checkpoint; Restore reads them back,
// so they are part of the repository format (docs/openstack.md).
const (
	TagProject   = "glance.project"
	TagImage     = "glance.image_id"
	TagImageName = "glance.image_name"
	TagSize      = "glance.size"
	TagChecksum  = "glance.checksum"   // Glance's MD5, hex
	TagHashAlgo  = "glance.hash_algo"  // os_hash_algo
	TagHashValue = "glance.hash_value" // os_hash_value
	TagRead      = "glance.read"       // the read path: "rbd" or "api"
	TagSaved     = "glance.image"      // the image's properties, JSON (Saved)
)

// Read paths (TagRead).
const (
	ReadRBD = "rbd"
	ReadAPI = "api"
)

// MetaJournal is the property a restore sets on the image it creates
// until the image is complete: the journal entry that created it.
const MetaJournal = "cairn_journal"
