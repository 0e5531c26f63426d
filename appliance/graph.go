package appliance

import (
	"context"
	"fmt"

	"cairn/plugins"
)

// maxDependencyDepth bounds how deep dependencies are followed: a
// resolver that keeps answering with new instances is a bug, not a graph.
const maxDependencyDepth = 8

// withDependencies returns res with what its resources depend on pulled
// in (plugins.DependencyResolver), each dependency before the first
// resource that depends on it and each instance once, and DependsOn set
// on the resources that depend on others. Resources whose plugins
// resolve nothing keep their order. An error of a resolver fails the
// protection: a server without its volumes is not protected.
func (a *Appliance) withDependencies(ctx context.Context, project string, res []ResourceBackup) ([]ResourceBackup, error) {
	out := make([]ResourceBackup, 0, len(res))
	seen := map[string]bool{}
	var add func(r plugins.Resource, depth int) error
	add = func(r plugins.Resource, depth int) error {
		key := plugins.Key(r)
		if seen[key] {
			return nil
		}
		if depth > maxDependencyDepth {
			return fmt.Errorf("resource %s: dependencies deeper than %d: %w", key, maxDependencyDepth, ErrInvalid)
		}
		seen[key] = true
		rb := ResourceBackup{Resource: r, Status: ResourceProtecting}
		p, err := a.reg.Get(r.Type)
		if dr, ok := p.(plugins.DependencyResolver); ok && err == nil {
			deps, err := dr.DependentResources(ctx, project, r)
			if err != nil {
				return fmt.Errorf("resource %s: what it depends on: %w", key, err)
			}
			for _, d := range deps {
				if err := add(d, depth+1); err != nil {
					return err
				}
				rb.DependsOn = append(rb.DependsOn, plugins.Key(d))
			}
		}
		out = append(out, rb)
		return nil
	}
	for _, rb := range res {
		if err := add(rb.Resource, 0); err != nil {
			return res, err
		}
	}
	return out, nil
}
