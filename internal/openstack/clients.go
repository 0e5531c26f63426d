package openstack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
)

// apiTimeout bounds one API request of the clients that move no data.
const apiTimeout = 2 * time.Minute

// provider authenticates the credentials for s (see scoped) for one
// service's client; timeout bounds each request (0: only the caller's ctx
// does).
func (c *Cloud) provider(ctx context.Context, s scope, timeout time.Duration) (*gophercloud.ProviderClient, error) {
	pc, err := openstack.NewClient(c.auth.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("cloud %s: %v: %w", c.auth.IdentityEndpoint, err, ErrConfig)
	}
	pc.HTTPClient = http.Client{Timeout: timeout, Transport: c.transport()}
	pc.RetryFunc = c.cfg.Retry.retryFunc(c.cfg.Timing)
	err = openstack.Authenticate(ctx, pc, c.scoped(s))
	switch {
	case err != nil && s.trust != "":
		return nil, trustError(s.trust, c.auth.Username, err)
	case err != nil:
		where := "its own project"
		if s.project != "" {
			where = "project " + s.project + " (the user needs a role in it)"
		}
		return nil, fmt.Errorf("authenticate %s at %s for %s: %w", c.auth.Username, c.auth.IdentityEndpoint, where, err)
	case s.trust != "" && s.project != "":
		// A trust names its project; a job of another project must not
		// reach that one's resources through it.
		p, err := authProject(pc)
		if err != nil {
			return nil, fmt.Errorf("trust %s: %v: %w", s.trust, err, ErrTrust)
		}
		if p != s.project {
			return nil, fmt.Errorf("trust %s is for project %s, not %s: %w", s.trust, p, s.project, ErrTrust)
		}
	}
	return pc, nil
}

// waiter is the status wait of a client other than Cinder's.
func (c *Cloud) waiter() *Cinder {
	w := &Cinder{waitTimeout: c.cfg.WaitTimeout, pollEvery: c.cfg.Poll, timing: c.cfg.Timing}
	if w.waitTimeout <= 0 {
		w.waitTimeout = 5 * time.Minute
	}
	if w.pollEvery <= 0 {
		w.pollEvery = time.Second
	}
	return w
}

// Glance returns the image client of project ("" for the credentials'
// own project), authenticating on first use.
func (c *Cloud) Glance(ctx context.Context, project string) (*Glance, error) {
	s := scopeOf(ctx, project)
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.glance[s]; g != nil {
		return g, nil
	}
	// Image data moves through this client: no overall timeout, the
	// caller's ctx bounds a transfer.
	pc, err := c.provider(ctx, s, 0)
	if err != nil {
		return nil, err
	}
	sc, err := openstack.NewImageV2(pc, c.eo)
	if err != nil {
		return nil, fmt.Errorf("image (glance) endpoint: %w", err)
	}
	g := &Glance{sc: sc, wait: c.waiter()}
	c.glance[s] = g
	return g, nil
}

// Neutron returns the network client of project ("" for the
// credentials' own project), authenticating on first use.
func (c *Cloud) Neutron(ctx context.Context, project string) (*Neutron, error) {
	s := scopeOf(ctx, project)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.neutron[s]; n != nil {
		return n, nil
	}
	pc, err := c.provider(ctx, s, apiTimeout)
	if err != nil {
		return nil, err
	}
	sc, err := openstack.NewNetworkV2(pc, c.eo)
	if err != nil {
		return nil, fmt.Errorf("network (neutron) endpoint: %w", err)
	}
	n := &Neutron{sc: sc}
	c.neutron[s] = n
	return n, nil
}
