package plugins

import "errors"

var (
	// ErrUnknownType is returned for a protectable type no plugin serves.
	ErrUnknownType = errors.New("unknown protectable type")
	// ErrInstanceNotFound is returned when a resource ID names no instance.
	ErrInstanceNotFound = errors.New("protectable instance not found")
	// ErrInvalidParameter marks a bad option, restore or verify parameter:
	// the caller's mistake, permanent.
	ErrInvalidParameter = errors.New("invalid parameter")
)
