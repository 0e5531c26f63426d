package plugins

import "context"

// DependencyResolver is implemented by plugins whose instances depend on
// instances of other types, as Karbor's protectables do: a server on its
// volumes, image and networks. Protecting such an instance pulls in what
// it depends on, protected before it in the same checkpoint.
//
// Contract: DependentResources returns only instances of the types
// Dependencies names, that Instance of their plugin would return for
// project; it makes no change in the cloud; an instance that depends on
// nothing returns an empty list. Leaf plugins (volumes, images, networks,
// files) do not implement it.
type DependencyResolver interface {
	DependentResources(ctx context.Context, project string, r Resource) ([]Resource, error)
}

// Key is r's key in a checkpoint's resource graph: "TYPE#ID".
func Key(r Resource) string { return r.Type + "#" + r.ID }
