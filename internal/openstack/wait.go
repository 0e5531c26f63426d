package openstack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/snapshots"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
)

// maxPoll caps the growing interval between two polls.
const maxPoll = 5 * time.Second

// poll calls get until done says so, an error status shows up, or the
// wait times out. get returns the status now; what is "volume X" in
// messages.
func (c *Cinder) poll(ctx context.Context, what, want string, get func(context.Context) (status string, done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, c.waitTimeout)
	defer cancel()
	interval := c.pollEvery
	last := "unknown"
	for {
		status, done, err := get(ctx)
		switch {
		case done:
			return nil
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("waiting for %s to %s: %w", what, want, err)
		case err == nil:
			last = status
			if strings.HasPrefix(status, "error") {
				return fmt.Errorf("%s went to status %s while waiting for it to %s: %w", what, status, want, ErrFailed)
			}
		}
		if err := c.timing.sleep(ctx, interval); err != nil {
			if err == context.DeadlineExceeded {
				return fmt.Errorf("waited %s for %s to %s; last status %s: %w", c.waitTimeout, what, want, last, ErrTimeout)
			}
			return err
		}
		interval = min(interval*3/2, maxPoll)
	}
}

// WaitVolume waits until volume id has status want and returns it.
func (c *Cinder) WaitVolume(ctx context.Context, id, want string) (*Volume, error) {
	return c.waitVolume(ctx, id, want, nil)
}

// waitVolume is WaitVolume, with check (when not nil) called on every
// status seen: an error from it ends the wait.
func (c *Cinder) waitVolume(ctx context.Context, id, want string, check func(*Volume) error) (*Volume, error) {
	var v *Volume
	err := c.poll(ctx, "volume "+id, "become "+want, func(ctx context.Context) (string, bool, error) {
		got, err := volumes.Get(ctx, c.sc, id).Extract()
		if err != nil {
			return "", false, wrap(err, "volume %s", id)
		}
		v = got
		if check != nil {
			if err := check(got); err != nil {
				return "", false, err
			}
		}
		return got.Status, got.Status == want, nil
	})
	return v, err
}

// WaitAttached waits, after Nova accepted to attach volume id to a server,
// until Cinder shows the volume in-use. Nova reserves the volume before it
// answers and gives the attach up when the compute host or the volume
// driver fails, and Cinder then shows the volume available again: that is
// a failure (ErrFailed) now, not a wait for the whole timeout.
func (c *Cinder) WaitAttached(ctx context.Context, id string) (*Volume, error) {
	left := false // seen in a status other than available
	return c.waitVolume(ctx, id, "in-use", func(v *Volume) error {
		if v.Status == "available" && left {
			return fmt.Errorf("the attach was given up, the volume is available again (the compute service's log says why): %w", ErrFailed)
		}
		left = left || v.Status != "available"
		return nil
	})
}

// WaitSnapshot waits until snapshot id has status want and returns it.
func (c *Cinder) WaitSnapshot(ctx context.Context, id, want string) (*Snapshot, error) {
	var s *Snapshot
	err := c.poll(ctx, "snapshot "+id, "become "+want, func(ctx context.Context) (string, bool, error) {
		got, err := snapshots.Get(ctx, c.sc, id).Extract()
		if err != nil {
			return "", false, wrap(err, "snapshot %s", id)
		}
		s = got
		return got.Status, got.Status == want, nil
	})
	return s, err
}

// waitGone waits until get answers 404.
func (c *Cinder) waitGone(ctx context.Context, kind, id string, get func(context.Context) (string, error)) error {
	return c.poll(ctx, kind+" "+id, "be deleted", func(ctx context.Context) (string, bool, error) {
		status, err := get(ctx)
		if statusOf(err) == http.StatusNotFound {
			return "", true, nil
		}
		return status, false, err
	})
}
