package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// LoginRequest is a user's password login (the console's login form).
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Project is the name (in Domain) of the project to scope to.
	Project string `json:"project"`
	// Domain is the user's and the project's domain (default "Default").
	Domain string `json:"domain"`
}

// PasswordLogin is implemented by Authenticators that can turn a user's
// password into a token: the daemon asks Keystone on the browser's
// behalf, so the console needs no CORS rule on Keystone and Keystone's
// URL need not be reachable from the browser.
type PasswordLogin interface {
	// Login returns a token scoped to req's project, or an error wrapping
	// errUnauthenticated (wrong credentials) or errAuthUnavailable.
	Login(ctx context.Context, req LoginRequest) (string, error)
}

// Login implements PasswordLogin: noauth takes any name, as it takes any
// token; the console then offers a project picker.
func (NoAuth) Login(context.Context, LoginRequest) (string, error) { return "noauth", nil }

// Login implements PasswordLogin with Keystone's POST /v3/auth/tokens,
// sent without the service user's token.
func (k *Keystone) Login(ctx context.Context, req LoginRequest) (string, error) {
	if req.Username == "" || req.Password == "" || req.Project == "" {
		return "", fmt.Errorf("%w: username, password and project are required", errBadBody)
	}
	if req.Domain == "" {
		req.Domain = "Default"
	}
	pc, err := openstack.NewClient(k.o.AuthURL)
	if err != nil {
		return "", fmt.Errorf("keystone at %s: %v: %w", k.o.AuthURL, err, errAuthUnavailable)
	}
	sc := *k.identity
	sc.ProviderClient = pc
	res := tokens.Create(ctx, &sc, &tokens.AuthOptions{Username: req.Username, Password: req.Password, DomainName: req.Domain,
		Scope: tokens.Scope{ProjectName: req.Project, DomainName: req.Domain}})
	if res.Err != nil {
		if gophercloud.ResponseCodeIs(res.Err, http.StatusUnauthorized) || gophercloud.ResponseCodeIs(res.Err, http.StatusNotFound) {
			// Keystone does not say which part was wrong; neither do we.
			return "", fmt.Errorf("keystone refused user %s in domain %s for project %s: check the name, password, project and domain: %w",
				req.Username, req.Domain, req.Project, errUnauthenticated)
		}
		return "", fmt.Errorf("ask keystone at %s for a token: %v: %w", k.o.AuthURL, res.Err, errAuthUnavailable)
	}
	tok, err := res.ExtractTokenID()
	if err != nil {
		return "", fmt.Errorf("keystone's token: %v: %w", err, errAuthUnavailable)
	}
	return tok, nil
}

// tokenView is the answer of /v1/auth/tokens: who the token is. ID is set
// only in the answer to a login (the one place a client learns it).
type tokenView struct {
	ID        string    `json:"id,omitempty"`
	UserID    string    `json:"user_id"`
	ProjectID string    `json:"project_id"`
	Roles     []string  `json:"roles"`
	Admin     bool      `json:"admin"`
	NoAuth    bool      `json:"noauth"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func viewToken(tok string, id *Identity) tokenView {
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	return tokenView{ID: tok, UserID: id.UserID, ProjectID: id.ProjectID, Roles: roles, Admin: id.Admin, NoAuth: id.NoAuth, ExpiresAt: id.ExpiresAt}
}

// login serves POST /v1/auth/tokens, the one v1 route without a token:
// it logs the user in and answers the new token with its identity. The
// password never reaches a log: requests are logged by method and path.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	pl, ok := s.auth.(PasswordLogin)
	if !ok {
		writeError(w, fmt.Errorf("this daemon's authentication has no password login; send a token: %w", errBadBody))
		return
	}
	b, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var body struct {
		Auth LoginRequest `json:"auth"`
	}
	if err := decodeStrict(b, &body); err != nil {
		writeError(w, fmt.Errorf("%w: login: %v (want {\"auth\": {\"username\", \"password\", \"project\", \"domain\"}})", errBadBody, err))
		return
	}
	tok, err := pl.Login(r.Context(), body.Auth)
	if err != nil {
		writeError(w, err)
		return
	}
	id, err := s.auth.Authenticate(r.Context(), tok)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"token": viewToken(tok, id)})
}

// whoami serves GET /v1/auth/tokens: the identity of the request's token
// (the console's token login checks a pasted token with it).
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	if id == nil {
		writeError(w, fmt.Errorf("no identity on the request: %w", errUnauthenticated))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": viewToken("", id)})
}
