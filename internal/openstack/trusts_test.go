package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeTrustKeystone is a Keystone v3 that knows one service user
// ("cairn"), its users' tokens and trusts, with Keystone's rules for
// them: only the trustor's own token makes a trust, with roles it holds;
// a trust-scoped token acts as the trustor in the trust's project; the
// trustor deletes a trust. A volumev3 endpoint on the same server records
// the token of each request.
type fakeTrustKeystone struct {
	*httptest.Server
	mu sync.Mutex
	// users maps a user token to its user and roles ("alice": member).
	users  map[string]fakeUser
	trusts map[string]*fakeTrust
	// tokens maps issued tokens to the trust they are scoped to ("" for
	// the service user's own).
	tokens map[string]string
	// auths are the scopes the service user asked for, in order
	// ("trust:ID", "project:ID" or "own").
	auths []string
	// volumeTokens are the tokens Cinder requests carried.
	volumeTokens []string
}

type fakeUser struct {
	id    string
	roles []string
}

type fakeTrust struct {
	Trustor       string   `json:"trustor_user_id"`
	Trustee       string   `json:"trustee_user_id"`
	Project       string   `json:"project_id"`
	Impersonation bool     `json:"impersonation"`
	ExpiresAt     *string  `json:"expires_at"`
	Roles         []string `json:"-"`
	revoked       bool
}

func newFakeTrustKeystone(t *testing.T) *fakeTrustKeystone {
	t.Helper()
	f := &fakeTrustKeystone{users: map[string]fakeUser{"alice-token": {"alice", []string{"member"}}},
		trusts: map[string]*fakeTrust{}, tokens: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// trust returns a copy of trust id, or nil; and how many trusts there are.
func (f *fakeTrustKeystone) trust(id string) (*fakeTrust, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tr := f.trusts[id]; tr != nil {
		c := *tr
		return &c, len(f.trusts)
	}
	return nil, len(f.trusts)
}

func keystoneFault(w http.ResponseWriter, code int, msg string) {
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error": {"code": %d, "message": %q}}`, code, msg)
}

func (f *fakeTrustKeystone) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v3/auth/tokens":
		f.auth(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v3/OS-TRUST/trusts":
		u, ok := f.users[r.Header.Get("X-Auth-Token")]
		if !ok {
			keystoneFault(w, 401, "The request you have made requires authentication.")
			return
		}
		var body struct {
			Trust struct {
				fakeTrust
				Roles []struct{ Name string } `json:"roles"`
			} `json:"trust"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			keystoneFault(w, 400, err.Error())
			return
		}
		tr := body.Trust.fakeTrust
		for _, role := range body.Trust.Roles {
			tr.Roles = append(tr.Roles, role.Name)
		}
		if tr.Trustor != u.id {
			keystoneFault(w, 403, "The authenticated user should match the trustor")
			return
		}
		for _, role := range tr.Roles {
			if !slices.Contains(u.roles, role) {
				keystoneFault(w, 403, "Trustor does not have role "+role)
				return
			}
		}
		id := fmt.Sprintf("trust-%d", len(f.trusts)+1)
		f.trusts[id] = &tr
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"trust": {"id": %q, "project_id": %q}}`, id, tr.Project)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v3/OS-TRUST/trusts/"):
		id := strings.TrimPrefix(r.URL.Path, "/v3/OS-TRUST/trusts/")
		tr := f.trusts[id]
		if tr == nil {
			keystoneFault(w, 404, "Could not find trust: "+id)
			return
		}
		if f.tokens[r.Header.Get("X-Auth-Token")] != id { // only its trustor: here, through the trust
			keystoneFault(w, 403, "You are not authorized to perform the requested action: identity:delete_trust.")
			return
		}
		delete(f.trusts, id)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v3/OS-TRUST/trusts/"):
		id := strings.TrimPrefix(r.URL.Path, "/v3/OS-TRUST/trusts/")
		if _, ok := f.tokens[r.Header.Get("X-Auth-Token")]; !ok {
			keystoneFault(w, 401, "The request you have made requires authentication.")
			return
		}
		if f.trusts[id] == nil {
			keystoneFault(w, 404, "Could not find trust: "+id)
			return
		}
		fmt.Fprintf(w, `{"trust": {"id": %q}}`, id)
	case strings.HasPrefix(r.URL.Path, "/volume/"):
		f.volumeTokens = append(f.volumeTokens, r.Header.Get("X-Auth-Token"))
		fmt.Fprint(w, volumeJSON("v1", "available"))
	default:
		keystoneFault(w, 404, "no route "+r.Method+" "+r.URL.Path)
	}
}

// auth is POST /v3/auth/tokens for the service user.
func (f *fakeTrustKeystone) auth(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Auth struct {
			Identity struct {
				Password struct {
					User struct{ Name, Password string }
				}
			}
			Scope struct {
				Project struct{ ID string }
				Trust   struct{ ID string } `json:"OS-TRUST:trust"`
			}
		}
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	if u := body.Auth.Identity.Password.User; u.Name != "cairn" || u.Password != "secret" {
		keystoneFault(w, 401, "The request you have made requires authentication.")
		return
	}
	user, project, trust := "cairn-id", "", body.Auth.Scope.Trust.ID
	switch {
	case trust != "":
		f.auths = append(f.auths, "trust:"+trust)
		tr := f.trusts[trust]
		if tr == nil || tr.revoked || tr.Trustee != "cairn-id" {
			keystoneFault(w, 401, "The request you have made requires authentication.")
			return
		}
		user, project = tr.Trustor, tr.Project
	case body.Auth.Scope.Project.ID != "":
		f.auths = append(f.auths, "project:"+body.Auth.Scope.Project.ID)
		keystoneFault(w, 401, "The request you have made requires authentication.") // no role anywhere
		return
	default:
		f.auths = append(f.auths, "own")
	}
	tok := fmt.Sprintf("token-%d", len(f.tokens)+1)
	f.tokens[tok] = trust
	w.Header().Set("X-Subject-Token", tok)
	w.WriteHeader(http.StatusCreated)
	catalog := fmt.Sprintf(`[{"type": "volumev3", "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "%s/volume/v3/%s"}]}]`, f.URL, project)
	proj := "null"
	if project != "" {
		proj = fmt.Sprintf(`{"id": %q, "name": %q, "domain": {"id": "default"}}`, project, project)
	}
	fmt.Fprintf(w, `{"token": {"user": {"id": %q, "name": %q, "domain": {"id": "default"}}, "project": %s, "catalog": %s, "expires_at": "2099-01-01T00:00:00Z"}}`,
		user, user, proj, catalog)
}

func fakeTrustCloud(t *testing.T, f *fakeTrustKeystone) *Cloud {
	t.Helper()
	c, err := New(Config{AuthURL: f.URL + "/v3", Username: "cairn", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCreateTrust: a trust from the user's own token to the service
// user's ID, for the project and roles, impersonating, without expiry;
// Keystone's refusals are ErrDenied with Keystone's reason.
func TestCreateTrust(t *testing.T) {
	tests := []struct {
		name, token, trustor string
		roles                []string
		reason               string // of the refusal; "" for none
	}{
		{"the trustor's own token", "alice-token", "alice", []string{"member"}, ""},
		{"another user's token", "alice-token", "bob", []string{"member"}, "should match the trustor"},
		{"a role the trustor lacks", "alice-token", "alice", []string{"admin"}, "does not have role admin"},
		{"an unknown token", "forged", "alice", []string{"member"}, "requires authentication"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTrustKeystone(t)
			c := fakeTrustCloud(t, f)
			id, err := c.CreateTrust(context.Background(), tc.token, tc.trustor, "p1", tc.roles)
			if tc.reason != "" {
				if _, n := f.trust(id); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.reason) || n != 0 {
					t.Fatalf("CreateTrust: %v (%d trusts), want ErrDenied with %q and no trust", err, n, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tr, _ := f.trust(id)
			if tr == nil || tr.Trustor != "alice" || tr.Trustee != "cairn-id" || tr.Project != "p1" || !tr.Impersonation ||
				tr.ExpiresAt != nil || !slices.Equal(tr.Roles, []string{"member"}) {
				t.Fatalf("trust %s: %+v; want alice to cairn-id in p1, impersonating, member, no expiry", id, tr)
			}
		})
	}
}

// TestTrustScopedClients: under WithTrust a client is made with a token
// of the trust, once per project and trust; without it the service
// user's own project scope is asked for; a trust of another project is
// refused; a broken trust is ErrTrust saying what to do, and DeleteTrust
// deletes through the trust, a trust already gone being no error.
func TestTrustScopedClients(t *testing.T) {
	ctx := context.Background()
	f := newFakeTrustKeystone(t)
	c := fakeTrustCloud(t, f)
	id, err := c.CreateTrust(ctx, "alice-token", "alice", "p1", []string{"member"})
	if err != nil {
		t.Fatal(err)
	}
	tctx := WithTrust(ctx, id)
	for range 2 {
		cin, err := c.Cinder(tctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cin.Volume(tctx, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	auths, vt, scoped := slices.Clone(f.auths), slices.Clone(f.volumeTokens), f.tokens[f.volumeTokens[0]]
	f.mu.Unlock()
	if !slices.Equal(auths, []string{"own", "trust:" + id}) || len(vt) != 2 || vt[0] != vt[1] || scoped != id {
		t.Fatalf("auths %v, Cinder tokens %v (scoped to trust %q); want one own (the trustee's ID), one through %s, used twice", auths, vt, scoped, id)
	}
	if _, err := c.Cinder(ctx, "p1"); err == nil || !strings.Contains(err.Error(), "needs a role") {
		t.Errorf("Cinder of p1 without the trust: %v, want the service user's own scope, refused", err)
	}
	if _, err := c.Cinder(tctx, "p2"); !errors.Is(err, ErrTrust) {
		t.Errorf("Cinder of p2 through p1's trust: %v, want ErrTrust", err)
	}
	if err := c.CheckTrust(ctx, id); err != nil {
		t.Fatalf("CheckTrust of a working trust: %v", err)
	}

	f.mu.Lock()
	f.trusts[id].revoked = true // alice lost her role
	f.mu.Unlock()
	err = c.CheckTrust(ctx, id)
	if !errors.Is(err, ErrTrust) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "create the scheduled operation again") {
		t.Fatalf("CheckTrust of a revoked trust: %v, want ErrTrust naming %s and what to do", err, id)
	}
	if _, err := c.Cinder(tctx, "p1"); !errors.Is(err, ErrTrust) {
		t.Fatalf("Cinder through a revoked trust: %v, want ErrTrust (the cached client dropped)", err)
	}
	if err := c.DeleteTrust(ctx, id); !errors.Is(err, ErrTrust) {
		t.Fatalf("DeleteTrust of a revoked trust: %v, want ErrTrust (only its trustor can delete it)", err)
	}

	f.mu.Lock()
	f.trusts[id].revoked = false
	f.mu.Unlock()
	if err := c.DeleteTrust(ctx, id); err != nil {
		t.Fatal(err)
	}
	if tr, _ := f.trust(id); tr != nil {
		t.Fatalf("trust %s still in Keystone after DeleteTrust", id)
	}
	if err := c.DeleteTrust(ctx, id); err != nil {
		t.Fatalf("DeleteTrust of a trust already gone: %v, want none", err)
	}
}
