package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"cairn/appliance"
)

var (
	// errUnauthenticated: no token, or one Keystone does not accept (401).
	errUnauthenticated = errors.New("authentication required")
	// errForbidden: a valid token that may not act on this project or
	// call this operation (403).
	errForbidden = errors.New("forbidden")
	// errAuthUnavailable: the identity service could not be asked (503);
	// the client should retry, the token may well be valid.
	errAuthUnavailable = errors.New("identity service unavailable")
)

// Identity is who a request acts as.
type Identity struct {
	UserID string
	// ProjectID is the project the token is scoped to; "" in noauth,
	// where the URL's project is taken as given.
	ProjectID string
	Roles     []string
	// Admin may act on every project, change quotas and list every
	// project's objects (all_tenants).
	Admin bool
	// NoAuth marks the noauth mode's caller: it acts in whatever project
	// the URL names and may change that project's quotas, but an
	// all_tenants list stays within the project, so projects remain
	// isolated from each other even without auth.
	NoAuth bool
	// ExpiresAt is when the token stops being valid (zero: never).
	ExpiresAt time.Time
}

// Authenticator turns the token of a request into an Identity.
type Authenticator interface {
	// Authenticate returns the identity of token, or an error wrapping
	// errUnauthenticated (token missing, invalid or expired) or
	// errAuthUnavailable (could not check).
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// NoAuth accepts any token, as Karbor's noauth does: the project in the
// URL is taken as given. Only for a single-operator appliance on a
// trusted network (the embedded default listens on 127.0.0.1).
type NoAuth struct{}

// Authenticate implements Authenticator.
func (NoAuth) Authenticate(context.Context, string) (*Identity, error) {
	return &Identity{UserID: "noauth", NoAuth: true}, nil
}

type identityKey struct{}

func withIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// authorize decides whether the request's identity may act on project.
// Every project-scoped handler reaches it through project(r).
func authorize(r *http.Request, project string) error {
	id := identityFrom(r.Context())
	switch {
	case id == nil:
		return fmt.Errorf("no identity on the request: %w", errUnauthenticated)
	case id.Admin, id.NoAuth, id.ProjectID != "" && id.ProjectID == project:
		return nil
	}
	return fmt.Errorf("the token is scoped to project %s, not %s: %w", id.ProjectID, project, errForbidden)
}

// requireAdmin refuses callers without an admin role (quota changes, as
// in Karbor's policy).
func requireAdmin(r *http.Request) error {
	if id := identityFrom(r.Context()); id == nil || !id.Admin && !id.NoAuth {
		return fmt.Errorf("this operation needs an admin role: %w", errForbidden)
	}
	return nil
}

// hasAnyRole reports whether roles holds one of want.
func hasAnyRole(roles, want []string) bool {
	for _, r := range roles {
		if slices.Contains(want, r) {
			return true
		}
	}
	return false
}

// listScope returns the project whose objects a list shows: the URL's,
// or every project's for an administrator asking with all_tenants (as in
// Karbor). A Keystone user without the role asking for all_tenants is
// refused rather than silently given its own; in noauth the flag is
// ignored, since anyone may name any project there.
func listScope(r *http.Request, project string) (string, error) {
	v := r.URL.Query().Get("all_tenants")
	if v == "" {
		return project, nil
	}
	all, err := strconv.ParseBool(v)
	if err != nil {
		return "", fmt.Errorf("%w: all_tenants %q: want true or false", errBadBody, v)
	}
	id := identityFrom(r.Context())
	if !all || id != nil && id.NoAuth {
		return project, nil
	}
	if id == nil || !id.Admin {
		return "", fmt.Errorf("all_tenants needs an admin role: %w", errForbidden)
	}
	return appliance.AllProjects, nil
}
