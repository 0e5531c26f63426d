package appliance

import (
	"context"
	"errors"
	"fmt"

	"cairn/internal/openstack"
)

// Trusts makes, checks and deletes the Keystone trusts through which
// scheduled operations act after their creator's token has expired, as
// Karbor's do (internal/openstack's Cloud implements it).
type Trusts interface {
	// CreateTrust delegates roles (by name) in project from the user
	// trustorID, with its token userToken, to the cloud user, and
	// returns the trust's ID. Keystone refusing MUST wrap
	// openstack.ErrDenied.
	CreateTrust(ctx context.Context, userToken, trustorID, project string, roles []string) (string, error)
	// CheckTrust authenticates through the trust; a trust that no longer
	// works MUST give an error that says what to do.
	CheckTrust(ctx context.Context, trustID string) error
	// DeleteTrust deletes the trust; one already gone is no error.
	DeleteTrust(ctx context.Context, trustID string) error
}

// Trustor is the user who creates a scheduled operation, as the API
// authenticated them: its Keystone token, user ID and roles (by name).
// The roles are those of the token's project, which is the operation's
// for anyone but an administrator.
type Trustor struct {
	UserID string
	Token  string
	Roles  []string
}

// createTrust makes the trust of a scheduled operation of project, or
// returns "" when there is nothing to make it with (noauth, no cloud).
func (a *Appliance) createTrust(ctx context.Context, project string, by *Trustor) (string, error) {
	if a.trusts == nil || by == nil || by.Token == "" {
		return "", nil
	}
	id, err := a.trusts.CreateTrust(ctx, by.Token, by.UserID, project, by.Roles)
	switch {
	case errors.Is(err, openstack.ErrDenied):
		return "", fmt.Errorf("a scheduled operation acts through a Keystone trust from its creator to the cloud user: %v: %w", err, ErrDenied)
	case err != nil:
		return "", fmt.Errorf("a scheduled operation acts through a Keystone trust from its creator to the cloud user: %v: %w", err, ErrUnavailable)
	}
	a.log.Info("keystone trust created", "trust", id, "project", project, "trustor", by.UserID)
	return id, nil
}

// deleteTrust deletes the trust of scheduled operation opID, logging a
// failure: the operation is gone whatever Keystone answers.
func (a *Appliance) deleteTrust(ctx context.Context, opID, trustID string) {
	if a.trusts == nil || trustID == "" {
		return
	}
	if err := a.trusts.DeleteTrust(context.WithoutCancel(ctx), trustID); err != nil {
		a.log.Warn("delete the keystone trust of a scheduled operation (its trustor or an admin can delete it: openstack trust delete)",
			"operation", opID, "trust", trustID, "err", err)
		return
	}
	a.log.Info("keystone trust deleted", "operation", opID, "trust", trustID)
}

// checkTrust is the first step of a scheduled run acting through trustID:
// a trust that stopped working fails the run with what to do.
func (a *Appliance) checkTrust(ctx context.Context, opID, trustID string) error {
	if a.trusts == nil || trustID == "" {
		return nil
	}
	if err := a.trusts.CheckTrust(ctx, trustID); err != nil {
		return fmt.Errorf("scheduled operation %s: %w", opID, err)
	}
	return nil
}
