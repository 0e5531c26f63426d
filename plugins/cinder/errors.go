package cinder

import "errors"

// ErrNotRBD: the volume's backend is not Ceph RBD, which the direct read
// path needs.
var ErrNotRBD = errors.New("the volume's backend is not Ceph RBD")

// ErrInUse: a restore over the original volume found it attached.
var ErrInUse = errors.New("the volume is in use")
