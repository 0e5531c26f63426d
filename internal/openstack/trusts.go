package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/trusts"
)

// scope is what the token of a client is scoped to: a project, or a
// trust (which names its project) when a job acts through one.
type scope struct{ project, trust string }

type trustKey struct{}

// WithTrust returns a context in which the clients of every Cloud act
// through Keystone trust trustID: the Cloud's user authenticates with the
// trust's scope and gets the roles its trustor delegated, in the trust's
// project, whether or not it holds a role there itself. A job sets it
// once; the plugins it calls pass the context on unchanged.
func WithTrust(ctx context.Context, trustID string) context.Context {
	return context.WithValue(ctx, trustKey{}, trustID)
}

// scopeOf is the scope of project's clients under ctx.
func scopeOf(ctx context.Context, project string) scope {
	t, _ := ctx.Value(trustKey{}).(string)
	return scope{project: project, trust: t}
}

// CreateTrust creates a Keystone trust with userToken, the token of user
// trustorID: it delegates roles (by name) in project to the Cloud's user,
// impersonating the trustor, without expiry. It returns the trust's ID.
// Keystone refusing (4xx: the token is not the trustor's, lacks a role,
// or may not delegate, as a trust-scoped token) is ErrDenied, with
// Keystone's reason.
func (c *Cloud) CreateTrust(ctx context.Context, userToken, trustorID, project string, roles []string) (string, error) {
	trustee, err := c.trusteeID(ctx)
	if err != nil {
		return "", err
	}
	pc, err := openstack.NewClient(c.auth.IdentityEndpoint)
	if err != nil {
		return "", fmt.Errorf("cloud %s: %v: %w", c.auth.IdentityEndpoint, err, ErrConfig)
	}
	// Not retried: a repeated POST could leave a second trust behind.
	pc.HTTPClient = http.Client{Timeout: apiTimeout}
	pc.SetToken(userToken)
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return "", fmt.Errorf("identity endpoint: %w", err)
	}
	opts := trusts.CreateOpts{Impersonation: true, TrusteeUserID: trustee, TrustorUserID: trustorID, ProjectID: project}
	for _, r := range roles {
		opts.Roles = append(opts.Roles, trusts.Role{Name: r})
	}
	t, err := trusts.Create(ctx, ic, opts).Extract()
	if err != nil {
		return "", keystoneError(err, "create a Keystone trust from user %s to %s in project %s", trustorID, c.auth.Username, project)
	}
	return t.ID, nil
}

// CheckTrust authenticates through trust trustID with a new token, so
// that a trust that stopped working is reported as such (ErrTrust, with
// what to do) rather than by the first request of a client made before.
func (c *Cloud) CheckTrust(ctx context.Context, trustID string) error {
	_, err := c.provider(ctx, scope{trust: trustID}, apiTimeout)
	if err != nil {
		c.dropTrust(trustID)
	}
	return err
}

// DeleteTrust deletes trust trustID with a token scoped to it (Keystone
// lets the trustor delete a trust, and the token of an impersonating
// trust acts as its trustor), and drops the clients that act through it.
// A trust Keystone no longer knows is no error; one that no longer
// authenticates is ErrTrust (only its trustor or an admin can delete
// it then).
func (c *Cloud) DeleteTrust(ctx context.Context, trustID string) error {
	c.dropTrust(trustID)
	pc, err := c.provider(ctx, scope{trust: trustID}, apiTimeout)
	if errors.Is(err, ErrTrust) && c.trustGone(ctx, trustID) {
		return nil
	}
	if err != nil {
		return err
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return fmt.Errorf("identity endpoint: %w", err)
	}
	err = trusts.Delete(ctx, ic, trustID).ExtractErr()
	if err != nil && statusOf(err) != http.StatusNotFound {
		return keystoneError(err, "delete Keystone trust %s", trustID)
	}
	return nil
}

// trustGone reports whether Keystone, asked with the Cloud's own token
// (a trustee may read its trusts), knows no trust trustID.
func (c *Cloud) trustGone(ctx context.Context, trustID string) bool {
	pc, err := c.provider(ctx, scope{}, apiTimeout)
	if err != nil {
		return false
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return false
	}
	return statusOf(trusts.Get(ctx, ic, trustID).Err) == http.StatusNotFound
}

// dropTrust forgets the clients acting through trustID.
func (c *Cloud) dropTrust(trustID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.cinder {
		if s.trust == trustID {
			delete(c.cinder, s)
		}
	}
	for s := range c.glance {
		if s.trust == trustID {
			delete(c.glance, s)
		}
	}
	for s := range c.neutron {
		if s.trust == trustID {
			delete(c.neutron, s)
		}
	}
	for s := range c.nova {
		if s.trust == trustID {
			delete(c.nova, s)
		}
	}
}

// trusteeID returns the Keystone ID of the Cloud's user, read once from a
// token of its own scope.
func (c *Cloud) trusteeID(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trustee != "" {
		return c.trustee, nil
	}
	pc, err := c.provider(ctx, scope{}, apiTimeout)
	if err != nil {
		return "", err
	}
	r, ok := pc.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return "", fmt.Errorf("the user ID of %s: not a Keystone v3 token: %w", c.auth.Username, ErrConfig)
	}
	u, err := r.ExtractUser()
	if err != nil || u.ID == "" {
		return "", fmt.Errorf("the user ID of %s: %v: %w", c.auth.Username, err, ErrConfig)
	}
	c.trustee = u.ID
	return u.ID, nil
}

// authProject is the project of pc's token.
func authProject(pc *gophercloud.ProviderClient) (string, error) {
	r, ok := pc.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return "", errors.New("not a Keystone v3 token")
	}
	p, err := r.ExtractProject()
	if err != nil || p == nil {
		return "", fmt.Errorf("no project in the token: %v", err)
	}
	return p.ID, nil
}

// trustError is the error of authenticating user through trust: Keystone
// refusing means the trust no longer works (ErrTrust).
func trustError(trust, user string, err error) error {
	switch statusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("keystone trust %s no longer lets %s act for its trustor (the trustor was deleted, lost its role "+
			"in the project, or the trust was deleted: %s); delete and create the scheduled operation again, as a user "+
			"with a role in the project, to make a new trust: %w", trust, user, keystoneReason(err), ErrTrust)
	}
	return fmt.Errorf("authenticate %s through Keystone trust %s: %w", user, trust, err)
}

// keystoneError names what failed with Keystone's reason; a refusal
// (4xx) is ErrDenied.
func keystoneError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if code := statusOf(err); code >= 400 && code < 500 {
		return fmt.Errorf("%s: keystone answered %d: %s: %w", what, code, keystoneReason(err), ErrDenied)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// keystoneReason is the message of Keystone's error body
// ({"error": {"message": …}}), or the whole error.
func keystoneReason(err error) string {
	var raw []byte
	var v gophercloud.ErrUnexpectedResponseCode
	var p *gophercloud.ErrUnexpectedResponseCode
	switch {
	case errors.As(err, &v):
		raw = v.Body
	case errors.As(err, &p):
		raw = p.Body
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Error.Message == "" {
		return err.Error()
	}
	return body.Error.Message
}
