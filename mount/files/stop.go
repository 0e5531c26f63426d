package files

import (
	"errors"
	"fmt"
	"time"

	"cairn/mount/fusefs"
)

// StopMount unmounts srv, retrying while it is busy for up to patience,
// then detaches it lazily so that no dead mount is left behind. It returns
// once the server has stopped (done is closed).
func StopMount(srv *fusefs.Server, done <-chan struct{}, patience time.Duration, notef func(string, ...any)) error {
	deadline := time.Now().Add(patience)
	warned := false
	for {
		err := srv.Unmount()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			notef("%v; detaching it lazily: it disappears now and ends when its last user lets go", err)
			if derr := srv.Detach(); derr != nil {
				return errors.Join(err, derr)
			}
			break
		}
		if !warned {
			notef("%s is busy (a file is open or a shell is inside); retrying for %v", srv.Dir(), patience)
			warned = true
		}
		select {
		case <-done:
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
	select {
	case <-done:
		return nil
	case <-time.After(patience):
		return fmt.Errorf("%s: the FUSE server did not stop after unmounting", srv.Dir())
	}
}
