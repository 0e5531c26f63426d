package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// KeystoneOptions configure token validation against Keystone v3. The
// service user (like keystonemiddleware's [keystone_authtoken]) needs a
// role that may validate other users' tokens (Keystone's default policy:
// admin or service).
type KeystoneOptions struct {
	AuthURL           string
	Username          string
	Password          string
	ProjectName       string
	UserDomainName    string
	ProjectDomainName string
	// AdminRoles may act on every project (default ["admin"]), but only
	// when held in AdminProject or on a system-scoped token: the same
	// role name in an ordinary project makes its holder a member there,
	// as Keystone's own "admin project" policies do.
	AdminRoles []string
	// AdminProject is the project (ID, or name in AdminProjectDomain)
	// whose admin-role holders administer cairn; empty: only
	// system-scoped tokens ("system": {"all": true}) do.
	AdminProject string
	// AdminProjectDomain is the domain (name or ID) of AdminProject when
	// it is given by name (default "Default").
	AdminProjectDomain string
	// CacheTTL bounds how long a validation result is reused (default 5m);
	// a revoked token keeps working for at most this long.
	CacheTTL time.Duration
	// CacheSize bounds the cached tokens (default 10000).
	CacheSize int
	// Now is the clock (tests).
	Now func() time.Time
}

// Keystone validates tokens with Keystone's GET /v3/auth/tokens, caching
// each answer (valid or not) so that a busy client costs one Keystone
// round trip per token and TTL, and concurrent requests with the same new
// token share one.
type Keystone struct {
	o        KeystoneOptions
	identity *gophercloud.ServiceClient
	log      *slog.Logger
	flight   singleflight.Group

	mu    sync.Mutex
	cache map[[32]byte]cachedIdentity
	stats struct{ hits, misses int64 }
}

type cachedIdentity struct {
	id    *Identity
	err   error
	until time.Time
}

// NewKeystone authenticates the service user, so that a wrong password or
// URL stops the daemon at start rather than at the first request.
func NewKeystone(ctx context.Context, o KeystoneOptions, log *slog.Logger) (*Keystone, error) {
	if o.AuthURL == "" || o.Username == "" || o.Password == "" {
		return nil, errors.New("keystone: auth_url, username and a password are required")
	}
	if o.UserDomainName == "" {
		o.UserDomainName = "Default"
	}
	if o.ProjectDomainName == "" {
		o.ProjectDomainName = "Default"
	}
	if len(o.AdminRoles) == 0 {
		o.AdminRoles = []string{"admin"}
	}
	if o.AdminProjectDomain == "" {
		o.AdminProjectDomain = "Default"
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ao := gophercloud.AuthOptions{IdentityEndpoint: o.AuthURL, Username: o.Username, Password: o.Password,
		DomainName: o.UserDomainName, AllowReauth: true,
		Scope: &gophercloud.AuthScope{ProjectName: o.ProjectName, DomainName: o.ProjectDomainName}}
	if o.ProjectName == "" {
		ao.Scope = nil
	}
	pc, err := openstack.AuthenticatedClient(ctx, ao)
	if err != nil {
		return nil, fmt.Errorf("keystone: authenticate service user %s at %s: %w", o.Username, o.AuthURL, err)
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, fmt.Errorf("keystone: %w", err)
	}
	if o.AdminProject == "" && log != nil {
		log.Info("keystone.admin_project is not set: only system-scoped tokens with an admin role administer cairn")
	}
	return &Keystone{o: o, identity: ic, log: log, cache: map[[32]byte]cachedIdentity{}}, nil
}

// Authenticate implements Authenticator.
func (k *Keystone) Authenticate(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, fmt.Errorf("send a Keystone token in X-Auth-Token: %w", errUnauthenticated)
	}
	key := sha256.Sum256([]byte(token)) // the cache holds no usable tokens
	now := k.o.Now()
	k.mu.Lock()
	c, ok := k.cache[key]
	if ok && now.Before(c.until) {
		k.stats.hits++
		k.mu.Unlock()
		return c.id, c.err
	}
	k.stats.misses++
	k.mu.Unlock()

	v, err, _ := k.flight.Do(string(key[:]), func() (any, error) {
		// Detached from the first caller: its cancellation must not fail
		// the others waiting on the same token.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		id, err := k.validate(vctx, token)
		if errors.Is(err, errAuthUnavailable) {
			return nil, err // not cached: the next request asks again
		}
		until := now.Add(k.o.CacheTTL)
		if id != nil && !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(until) {
			until = id.ExpiresAt
		}
		k.store(key, cachedIdentity{id: id, err: err, until: until}, now)
		return id, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*Identity), nil
}

func (k *Keystone) validate(ctx context.Context, token string) (*Identity, error) {
	res := tokens.Get(ctx, k.identity, token)
	if res.Err != nil {
		if gophercloud.ResponseCodeIs(res.Err, http.StatusNotFound) || gophercloud.ResponseCodeIs(res.Err, http.StatusUnauthorized) {
			return nil, fmt.Errorf("the token is invalid or expired; get a new one from Keystone: %w", errUnauthenticated)
		}
		k.log.Warn("keystone token validation failed", "err", res.Err)
		return nil, fmt.Errorf("validate token at %s: %v: %w", k.o.AuthURL, res.Err, errAuthUnavailable)
	}
	tok, err := res.ExtractToken()
	if err != nil {
		return nil, fmt.Errorf("decode Keystone token: %v: %w", err, errAuthUnavailable)
	}
	user, err := res.ExtractUser()
	if err != nil {
		return nil, fmt.Errorf("decode Keystone token user: %v: %w", err, errAuthUnavailable)
	}
	proj, err := res.ExtractProject()
	if err != nil {
		return nil, fmt.Errorf("decode Keystone token project: %v: %w", err, errAuthUnavailable)
	}
	roles, err := res.ExtractRoles()
	if err != nil {
		return nil, fmt.Errorf("decode Keystone token roles: %v: %w", err, errAuthUnavailable)
	}
	// gophercloud has no accessor for a system-scoped token's scope.
	var scope struct {
		System struct {
			All bool `json:"all"`
		} `json:"system"`
	}
	if err := res.ExtractInto(&scope); err != nil {
		return nil, fmt.Errorf("decode Keystone token scope: %v: %w", err, errAuthUnavailable)
	}
	id := &Identity{UserID: user.ID, ExpiresAt: tok.ExpiresAt}
	if proj != nil {
		id.ProjectID = proj.ID
	}
	for _, r := range roles {
		id.Roles = append(id.Roles, r.Name)
	}
	id.Admin = hasAnyRole(id.Roles, k.o.AdminRoles) && (scope.System.All || k.isAdminProject(proj))
	if id.ProjectID == "" && !id.Admin {
		return nil, fmt.Errorf("the token is not scoped to a project; ask Keystone for a project-scoped token: %w", errUnauthenticated)
	}
	if !id.ExpiresAt.IsZero() && !k.o.Now().Before(id.ExpiresAt) {
		return nil, fmt.Errorf("the token expired at %s: %w", id.ExpiresAt.Format(time.RFC3339), errUnauthenticated)
	}
	return id, nil
}

// isAdminProject reports whether p is the configured admin project: by
// ID (unique across domains), or by name within its domain.
func (k *Keystone) isAdminProject(p *tokens.Project) bool {
	if p == nil || k.o.AdminProject == "" {
		return false
	}
	if p.ID == k.o.AdminProject {
		return true
	}
	d := k.o.AdminProjectDomain
	return p.Name == k.o.AdminProject && (p.Domain.Name == d || p.Domain.ID == d)
}

// store caches c, making room by dropping expired entries and, if the
// cache is still full, an arbitrary half: a burst of distinct tokens
// costs re-validations, never unbounded memory.
func (k *Keystone) store(key [32]byte, c cachedIdentity, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= k.o.CacheSize {
		for key, e := range k.cache {
			if !now.Before(e.until) {
				delete(k.cache, key)
			}
		}
		for key := range k.cache {
			if len(k.cache) < k.o.CacheSize/2 {
				break
			}
			delete(k.cache, key)
		}
	}
	k.cache[key] = c
}

// collectors are the token cache's counters for /metrics.
func (k *Keystone) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_auth_token_cache_hits_total",
			Help: "Token validations answered from the cache."}, func() float64 { h, _ := k.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_auth_token_cache_misses_total",
			Help: "Token validations that asked Keystone."}, func() float64 { _, m := k.CacheStats(); return float64(m) }),
	}
}

// CacheStats returns how many validations were answered from the cache
// and how many asked Keystone (or waited on a request that did).
func (k *Keystone) CacheStats() (hits, misses int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats.hits, k.stats.misses
}
