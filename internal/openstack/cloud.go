package openstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// Config says how to reach the cloud. Credentials come from exactly one
// place: Cloud (an entry of clouds.yaml), FromEnv (the OS_* variables),
// or the explicit fields.
type Config struct {
	// Cloud names an entry of clouds.yaml (found where the OpenStack
	// clients look: ./, ~/.config/openstack, /etc/openstack).
	Cloud string
	// FromEnv reads OS_AUTH_URL, OS_USERNAME, OS_PASSWORD … as the
	// openstack CLI does.
	FromEnv bool

	AuthURL           string
	Username          string
	Password          string
	ProjectName       string
	UserDomainName    string
	ProjectDomainName string

	// Region of the endpoints (default: OS_REGION_NAME, or the first).
	Region string
	// Retry bounds the retries of each request.
	Retry RetryPolicy
	// WaitTimeout bounds each wait for a status (default 5m); Poll is
	// the first interval between polls, growing to 5 s (default 1s).
	WaitTimeout, Poll time.Duration
	// Timing, if set, adds up the time spent waiting for the cloud.
	Timing *Timing
}

// Cloud is one set of credentials. It is safe for concurrent use.
type Cloud struct {
	cfg  Config
	auth gophercloud.AuthOptions
	eo   gophercloud.EndpointOpts

	mu sync.Mutex
	// The clients, made on first use (clients.go), by scope: the project
	// and, for a job acting through a trust, the trust.
	cinder  map[scope]*Cinder
	glance  map[scope]*Glance
	neutron map[scope]*Neutron
	nova    map[scope]*Nova
	// trustee is the user's Keystone ID, once looked up (trusts.go).
	trustee string
}

// New checks cfg; it does not authenticate (Cinder does, per project).
func New(cfg Config) (*Cloud, error) {
	c := &Cloud{cfg: cfg, cinder: map[scope]*Cinder{}, glance: map[scope]*Glance{},
		neutron: map[scope]*Neutron{}, nova: map[scope]*Nova{}}
	switch {
	case cfg.Cloud != "":
		ao, eo, _, err := clouds.Parse(clouds.WithCloudName(cfg.Cloud))
		if err != nil {
			return nil, fmt.Errorf("clouds.yaml cloud %q: %v: %w", cfg.Cloud, err, ErrConfig)
		}
		c.auth, c.eo = ao, eo
	case cfg.FromEnv:
		ao, err := authFromEnv()
		if err != nil {
			return nil, fmt.Errorf("OS_* environment: %v: %w", err, ErrConfig)
		}
		c.auth = ao
	default:
		if cfg.AuthURL == "" || cfg.Username == "" || cfg.Password == "" {
			return nil, fmt.Errorf("the cloud needs auth_url, username and a password (or a clouds.yaml cloud): %w", ErrConfig)
		}
		c.auth = gophercloud.AuthOptions{IdentityEndpoint: cfg.AuthURL, Username: cfg.Username,
			Password: cfg.Password, DomainName: orDefault(cfg.UserDomainName)}
		if cfg.ProjectName != "" {
			c.auth.Scope = &gophercloud.AuthScope{ProjectName: cfg.ProjectName, DomainName: orDefault(cfg.ProjectDomainName)}
		}
	}
	if cfg.Region != "" {
		c.eo.Region = cfg.Region
	} else if c.eo.Region == "" {
		c.eo.Region = os.Getenv("OS_REGION_NAME")
	}
	c.auth.AllowReauth = true
	return c, nil
}

func orDefault(s string) string {
	if s == "" {
		return "Default"
	}
	return s
}

// scoped returns the auth options of the credentials for s: through its
// trust, or scoped to its project ("" keeps their own scope).
func (c *Cloud) scoped(s scope) gophercloud.AuthOptions {
	ao := c.auth
	switch {
	case s.trust != "":
		ao.TenantID, ao.TenantName = "", ""
		ao.Scope = &gophercloud.AuthScope{TrustID: s.trust}
	case s.project != "":
		ao.TenantID, ao.TenantName = "", ""
		ao.Scope = &gophercloud.AuthScope{ProjectID: s.project}
	}
	return ao
}

// Cinder returns the block storage client of project ("" for the
// credentials' own project), authenticating on first use. The user must
// hold a role in project, or ctx carry a trust to it (WithTrust): Cinder
// then shows it that project's volumes only.
func (c *Cloud) Cinder(ctx context.Context, project string) (*Cinder, error) {
	s := scopeOf(ctx, project)
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.cinder[s]; v != nil {
		return v, nil
	}
	pc, err := c.provider(ctx, s, apiTimeout)
	if err != nil {
		return nil, err
	}
	sc, err := openstack.NewBlockStorageV3(pc, c.eo)
	if err != nil {
		return nil, fmt.Errorf("block storage (volumev3) endpoint: %w", err)
	}
	v := newCinder(sc, c.cfg)
	c.cinder[s] = v
	return v, nil
}

// authFromEnv reads the OS_* variables. gophercloud's reader knows one
// OS_DOMAIN_* for user and project; the openstack CLI's openrc files set
// OS_USER_DOMAIN_NAME and OS_PROJECT_DOMAIN_NAME instead, which are read
// here when OS_DOMAIN_* are absent.
func authFromEnv() (gophercloud.AuthOptions, error) {
	e := os.Getenv
	if e("OS_DOMAIN_NAME") != "" || e("OS_DOMAIN_ID") != "" ||
		e("OS_USER_DOMAIN_NAME")+e("OS_USER_DOMAIN_ID")+e("OS_PROJECT_DOMAIN_NAME")+e("OS_PROJECT_DOMAIN_ID") == "" {
		return openstack.AuthOptionsFromEnv()
	}
	ao := gophercloud.AuthOptions{IdentityEndpoint: e("OS_AUTH_URL"), Username: e("OS_USERNAME"), UserID: e("OS_USERID"),
		Password: e("OS_PASSWORD"), DomainName: e("OS_USER_DOMAIN_NAME"), DomainID: e("OS_USER_DOMAIN_ID")}
	if ao.UserID != "" {
		ao.DomainName, ao.DomainID = "", ""
	}
	switch {
	case e("OS_PROJECT_ID") != "":
		ao.Scope = &gophercloud.AuthScope{ProjectID: e("OS_PROJECT_ID")}
	case e("OS_PROJECT_NAME") != "":
		ao.Scope = &gophercloud.AuthScope{ProjectName: e("OS_PROJECT_NAME"), DomainName: e("OS_PROJECT_DOMAIN_NAME"), DomainID: e("OS_PROJECT_DOMAIN_ID")}
		if ao.Scope.DomainName == "" && ao.Scope.DomainID == "" {
			ao.Scope.DomainName = "Default"
		}
	}
	if ao.IdentityEndpoint == "" || ao.Username+ao.UserID == "" || ao.Password == "" {
		return ao, errors.New("OS_AUTH_URL, OS_USERNAME (or OS_USERID) and OS_PASSWORD are required")
	}
	return ao, nil
}
