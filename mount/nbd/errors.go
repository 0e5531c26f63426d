package nbd

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; the wrapped
// message says which export, overlay or option.
var (
	// ErrProtocol means the peer broke the NBD protocol (a bad magic, an
	// impossible length, a truncated message). The connection is closed.
	ErrProtocol = errors.New("nbd protocol violation")
	// ErrUnknownExport means no export answers to the requested name.
	ErrUnknownExport = errors.New("no such export")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("nbd server closed")
	// ErrOverlayBusy means another process (or export) holds the overlay.
	ErrOverlayBusy = errors.New("overlay is in use")
	// ErrOverlayMismatch means an overlay on disk was made for another
	// volume size, checkpoint or granularity, or is damaged.
	ErrOverlayMismatch = errors.New("overlay does not match its checkpoint")
	// ErrNoOverlay means no overlay exists for a checkpoint.
	ErrNoOverlay = errors.New("no overlay")
)

var (
	// errAborted ends a connection whose client sent NBD_OPT_ABORT.
	errAborted = errors.New("client aborted the negotiation")
	// errIdle ends a connection that sent no request for IdleTimeout.
	errIdle = errors.New("connection idle too long")
	// errBusy ends a connection refused because all others are busy.
	errBusy = errors.New("server busy: every connection is serving requests")
)

// errorf wraps err with a formatted context.
func errorf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}
