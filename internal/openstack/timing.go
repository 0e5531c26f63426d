package openstack

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// Timing adds up the time a Cloud's callers spend waiting for the cloud:
// in HTTP requests, and asleep between the polls of a status wait or
// before the retry of a failed request. With the time of a whole job beside it, it splits the job
// into waiting for OpenStack and moving data. Its zero value is ready.
type Timing struct {
	requests atomic.Int64 // nanoseconds
	sleeps   atomic.Int64
}

// Requests is the time spent in HTTP requests to the cloud.
func (t *Timing) Requests() time.Duration { return time.Duration(t.requests.Load()) }

// Sleeps is the time spent asleep between the polls of status waits
// and before retries.
func (t *Timing) Sleeps() time.Duration { return time.Duration(t.sleeps.Load()) }

// sleep waits d or until ctx is done, and counts the time asleep.
func (t *Timing) sleep(ctx context.Context, d time.Duration) error {
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	defer func() {
		if t != nil {
			t.sleeps.Add(int64(time.Since(start)))
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// timedTransport counts the time of each round trip, up to the end of
// the response's headers (the bodies here are small JSON, except image
// data, whose transfer is data movement).
type timedTransport struct {
	base http.RoundTripper
	t    *Timing
}

func (tt timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := tt.base.RoundTrip(r)
	tt.t.requests.Add(int64(time.Since(start)))
	return resp, err
}

// transport is the HTTP transport of the cloud's clients.
func (c *Cloud) transport() http.RoundTripper {
	if c.cfg.Timing == nil {
		return http.DefaultTransport
	}
	return timedTransport{base: http.DefaultTransport, t: c.cfg.Timing}
}
