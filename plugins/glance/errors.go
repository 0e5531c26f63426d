package glance

import "errors"

// ErrChecksum: a restored image's or a backup's checksum is not the
// saved one.
var ErrChecksum = errors.New("checksum differs from the image's saved one")

// ErrNotActive: the image has no data to protect (not active).
var ErrNotActive = errors.New("image is not active")
