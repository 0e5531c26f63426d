package appliance

import (
	"context"
	"errors"
	"fmt"

	"cairn/plugins"
)

// ProviderID is the fixed ID of the built-in cairn provider.
const ProviderID = "cf56bd3e-97a7-4078-b6d5-f36246333fd9"

// Provider is a Karbor protection provider.
type Provider struct {
	ID                 string         `json:"id"`
	Name               string         `json:"name"`
	Description        string         `json:"description"`
	ExtendedInfoSchema map[string]any `json:"extended_info_schema"`
}

// Providers lists the providers: the one built-in cairn provider.
func (a *Appliance) Providers() []Provider {
	opt, rst, sav := map[string]any{}, map[string]any{}, map[string]any{}
	for _, t := range a.reg.Types() {
		p, _ := a.reg.Get(t)
		s := p.Schemas()
		opt[t], rst[t], sav[t] = s.Options, s.Restore, s.SavingInfo
	}
	return []Provider{{ID: ProviderID, Name: "cairn",
		Description:        "cairn: deduplicated, compressed, erasure-coded block-level backups",
		ExtendedInfoSchema: map[string]any{"options_schema": opt, "restore_schema": rst, "saving_info_schema": sav}}}
}

// ProtectableTypes lists the protectable types.
func (a *Appliance) ProtectableTypes() []string { return a.reg.Types() }

// ProtectableType describes one type: its name and dependent types.
func (a *Appliance) ProtectableType(typ string) (map[string]any, error) {
	p, err := a.reg.Get(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	deps := p.Dependencies()
	if deps == nil {
		deps = []string{}
	}
	return map[string]any{"name": typ, "dependent_types": deps}, nil
}

// Instance is a protectable instance in Karbor's shape.
type Instance struct {
	plugins.Resource
	DependentResources []plugins.Resource `json:"dependent_resources"`
}

// Instances lists the instances of a type.
func (a *Appliance) Instances(ctx context.Context, project, typ string) ([]Instance, error) {
	p, err := a.reg.Get(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	rs, err := p.Instances(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(rs))
	for _, r := range rs {
		out = append(out, Instance{Resource: r, DependentResources: []plugins.Resource{}})
	}
	return out, nil
}

// Instance returns one instance.
func (a *Appliance) Instance(ctx context.Context, project, typ, id string) (*Instance, error) {
	p, err := a.reg.Get(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	r, err := p.Instance(ctx, project, id)
	if errors.Is(err, plugins.ErrInstanceNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	deps := []plugins.Resource{}
	if dr, ok := p.(plugins.DependencyResolver); ok {
		if deps, err = dr.DependentResources(ctx, project, r); err != nil {
			return nil, fmt.Errorf("%s %s: what it depends on: %w", typ, id, err)
		}
	}
	return &Instance{Resource: r, DependentResources: deps}, nil
}
