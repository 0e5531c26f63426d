package image

import "errors"

var (
	// ErrNoSeed: no cloud source answered (no config drive, no NoCloud
	// drive, no metadata service).
	ErrNoSeed = errors.New("no cloud configuration found")
	// ErrUserData: the user data is missing or is not a valid cairn
	// appliance configuration.
	ErrUserData = errors.New("bad user data")
	// ErrDataVolume: the data volume named in the user data cannot be
	// found or prepared.
	ErrDataVolume = errors.New("data volume unusable")
)
