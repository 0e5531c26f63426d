package openstack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// RetryPolicy bounds the retries of one request.
type RetryPolicy struct {
	// Max is how many times a request is repeated (default 6).
	Max uint
	// Base is the first backoff, doubled on each retry up to Cap
	// (defaults 500ms and 10s).
	Base, Cap time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Max == 0 {
		p.Max = 6
	}
	if p.Base <= 0 {
		p.Base = 500 * time.Millisecond
	}
	if p.Cap <= 0 {
		p.Cap = 10 * time.Second
	}
	return p
}

// backoff is the pause before retry n (1-based).
func (p RetryPolicy) backoff(n uint) time.Duration {
	d := p.Base
	for i := uint(1); i < n && d < p.Cap; i++ {
		d *= 2
	}
	return min(d, p.Cap)
}

// statusOf is the HTTP status of a gophercloud error, 0 for none.
func statusOf(err error) int {
	var v gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &v) {
		return v.Actual
	}
	var p *gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &p) {
		return p.Actual
	}
	return 0
}

// retriable reports whether a request that failed with err may be sent
// again: 409 (Cinder's "busy, try later") and 5xx for every method,
// transport errors only where a repeat cannot act twice.
func retriable(method, url string, err error) bool {
	switch code := statusOf(err); {
	case code >= 500 && method == http.MethodPost && strings.HasSuffix(url, "/attachments"):
		// A failed attachment create leaves its reserved attachment
		// behind, and a repeat is refused (400): Attach cleans up and
		// repeats it itself.
		return false
	case code == http.StatusConflict, code >= 500:
		return true
	case code != 0:
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return method != http.MethodPost
}

// retryFunc is gophercloud's hook: returning nil repeats the request.
// The time asleep before a retry counts in timing (nil: not counted).
func (p RetryPolicy) retryFunc(timing *Timing) gophercloud.RetryFunc {
	p = p.withDefaults()
	return func(ctx context.Context, method, url string, _ *gophercloud.RequestOpts, err error, n uint) error {
		if n > p.Max || !retriable(method, url, err) {
			return err
		}
		if serr := timing.sleep(ctx, p.backoff(n)); serr != nil {
			return errors.Join(err, serr)
		}
		return nil
	}
}
