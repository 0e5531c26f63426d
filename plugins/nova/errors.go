package nova

import "errors"

// ErrManifest marks a server checkpoint whose manifest cannot be used.
var ErrManifest = errors.New("invalid server manifest")
