package cinder

import (
	"fmt"

	"cairn/plugins"
)

// Read paths: how a protection reads a volume (and a restore writes it),
// the protection option and restore parameter "read_path" and the
// checkpoint tag TagReadPath.
const (
	// ReadDirect reads the volume's RBD snapshot straight from Ceph.
	ReadDirect = "direct"
	// ReadAttach attaches a temporary volume made from the snapshot to
	// the appliance's own server through Nova and reads its device.
	ReadAttach = "attach"
)

// ChoosePath decides the read path of one protection or restore. want is
// the option ("" for none), configured the appliance's default ("" for
// none); rbd says whether the volume's RBD image was found (Cinder's
// connection info named one); canAttach whether the appliance knows its
// own server (cloud.server_id).
//
// With neither set, an RBD volume is read directly and any other through
// the appliance's attachment. "direct" needs an RBD image; "attach" needs
// the server.
func ChoosePath(want, configured string, rbd, canAttach bool) (string, error) {
	if want == "" {
		want = configured
	}
	const noServer = "the appliance does not know its own Nova server: set cloud.server_id"
	switch want {
	case ReadDirect:
		if !rbd {
			return "", fmt.Errorf("read_path %q: %w; read_path %q reads other backends", want, ErrNotRBD, ReadAttach)
		}
		return ReadDirect, nil
	case ReadAttach:
		if !canAttach {
			return "", fmt.Errorf("read_path %q: %s: %w", want, noServer, plugins.ErrInvalidParameter)
		}
		return ReadAttach, nil
	case "":
		switch {
		case rbd:
			return ReadDirect, nil
		case canAttach:
			return ReadAttach, nil
		}
		return "", fmt.Errorf("%w, and the path through the appliance's attachment is off: %s", ErrNotRBD, noServer)
	}
	return "", fmt.Errorf("read_path %q: want %q or %q: %w", want, ReadDirect, ReadAttach, plugins.ErrInvalidParameter)
}
