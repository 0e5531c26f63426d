package appliance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cairn/plugins"
)

// PlanInput is what creating or updating a plan may set; nil fields are
// left alone on update.
type PlanInput struct {
	Name        *string
	Description *string
	ProviderID  string
	Resources   []PlanResource
	Parameters  map[string]any
	Status      *string
}

// PlanResource is a resource named in a plan request.
type PlanResource struct {
	ID, Type, Name string
	ExtraInfo      map[string]any
}

func (a *Appliance) checkResources(ctx context.Context, project string, in []PlanResource) ([]Instance, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("a plan needs at least one resource: %w", ErrInvalid)
	}
	seen := map[string]bool{}
	var out []Instance
	for _, r := range in {
		if seen[r.Type+"#"+r.ID] {
			return nil, fmt.Errorf("resource %s listed twice: %w", r.ID, ErrInvalid)
		}
		seen[r.Type+"#"+r.ID] = true
		inst, err := a.Instance(ctx, project, r.Type, r.ID)
		if err != nil {
			return nil, fmt.Errorf("resource %s of type %s: %w: %w", r.ID, r.Type, ErrInvalid, err)
		}
		out = append(out, *inst)
	}
	return out, nil
}

// checkParameters checks a plan's parameters, Karbor's per-resource
// protection options: each key is a resource type of the plan (options for
// all its resources) or "TYPE#ID" of one resource, and each value an
// object the type's plugin accepts (its options schema). Values are
// replaced by their typed form ("3" becomes 3), as the plugins see them.
func (a *Appliance) checkParameters(params map[string]any, insts []Instance) error {
	types := map[string]bool{}
	for _, i := range insts {
		types[i.Type] = true
		types[resKey(i.Resource)] = true
	}
	for k, v := range params {
		if !types[k] {
			return fmt.Errorf("plan parameters key %q: want a resource type of the plan or TYPE#ID of one of its resources: %w", k, ErrInvalid)
		}
		opts, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("plan parameters %q: want an object of options: %w", k, ErrInvalid)
		}
		typ, _, _ := strings.Cut(k, "#")
		p, err := a.reg.Get(typ)
		if err != nil {
			return fmt.Errorf("plan parameters %q: %w: %w", k, ErrInvalid, err)
		}
		norm, err := plugins.NormalizeOptions(p.Schemas().Options, opts)
		if err != nil {
			return fmt.Errorf("plan parameters %q: %w: %w", k, ErrInvalid, err)
		}
		params[k] = norm
	}
	return nil
}

// CreatePlan creates a plan in status "suspended".
func (a *Appliance) CreatePlan(ctx context.Context, project string, in PlanInput) (*Plan, error) {
	if in.Name == nil || *in.Name == "" {
		return nil, fmt.Errorf("plan name is required: %w", ErrInvalid)
	}
	if in.ProviderID != ProviderID {
		return nil, fmt.Errorf("provider %s: %w", in.ProviderID, ErrNotFound)
	}
	insts, err := a.checkResources(ctx, project, in.Resources)
	if err != nil {
		return nil, err
	}
	if err := a.checkParameters(in.Parameters, insts); err != nil {
		return nil, err
	}
	p := &Plan{ID: NewUUID(), Name: *in.Name, ProviderID: in.ProviderID, ProjectID: project, Status: PlanSuspended,
		Parameters: in.Parameters, CreatedAt: a.now().UTC()}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if p.Parameters == nil {
		p.Parameters = map[string]any{}
	}
	for _, i := range insts {
		p.Resources = append(p.Resources, i.Resource)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, q := range a.plans {
		if q.ProjectID == project {
			n++
		}
	}
	if n >= a.quotaLocked(project).Plans {
		return nil, fmt.Errorf("project %s has %d plans: %w", project, n, ErrQuota)
	}
	a.plans[p.ID] = p
	a.save("plans", p.ID, p)
	return clonePlan(p), nil
}

// UpdatePlan changes a plan's name, description, resources or status.
func (a *Appliance) UpdatePlan(ctx context.Context, project, id string, in PlanInput) (*Plan, error) {
	var insts []Instance
	if in.Resources != nil {
		var err error
		if insts, err = a.checkResources(ctx, project, in.Resources); err != nil {
			return nil, err
		}
	}
	if in.Status != nil && *in.Status != PlanSuspended && *in.Status != PlanStarted {
		return nil, fmt.Errorf("plan status %q: must be suspended or started: %w", *in.Status, ErrInvalid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.plans[id]
	if p == nil || p.ProjectID != project {
		return nil, fmt.Errorf("plan %s: %w", id, ErrNotFound)
	}
	if in.Name != nil {
		if *in.Name == "" {
			return nil, fmt.Errorf("plan name must not be empty: %w", ErrInvalid)
		}
		p.Name = *in.Name
	}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if in.Status != nil {
		p.Status = *in.Status
	}
	if insts != nil {
		// A new slice: checkpoints and earlier copies share the old one.
		rs := make([]plugins.Resource, 0, len(insts))
		for _, i := range insts {
			rs = append(rs, i.Resource)
		}
		p.Resources = rs
	}
	a.save("plans", p.ID, p)
	return clonePlan(p), nil
}

// DeletePlan deletes a plan; its checkpoints stay.
func (a *Appliance) DeletePlan(project, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.plans[id]
	if p == nil || p.ProjectID != project {
		return fmt.Errorf("plan %s: %w", id, ErrNotFound)
	}
	for _, op := range a.ops {
		if op.OperationDefinition["plan_id"] == id {
			return fmt.Errorf("plan %s is used by scheduled operation %s: %w", id, op.ID, ErrConflict)
		}
	}
	delete(a.plans, id)
	return a.st.delete("plans", id)
}

// Plans lists a project's plans.
func (a *Appliance) Plans(project string) []Plan {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Plan
	for _, p := range a.plans {
		if inProject(p.ProjectID, project) {
			out = append(out, *clonePlan(p))
		}
	}
	return out
}

// GetPlan returns one plan.
func (a *Appliance) GetPlan(project, id string) (*Plan, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.plans[id]
	if p == nil || p.ProjectID != project {
		return nil, fmt.Errorf("plan %s: %w", id, ErrNotFound)
	}
	return clonePlan(p), nil
}

func clonePlan(p *Plan) *Plan {
	c := *p
	c.Resources = slices.Clone(p.Resources)
	c.Parameters = maps.Clone(p.Parameters)
	return &c
}
