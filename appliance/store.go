package appliance

import "sync/atomic"

// stateStore persists the appliance's objects (plans, checkpoints, jobs
// …), each a JSON document under a kind and an ID.
//
// Contract:
//   - put and delete are durable when they return nil: a crash (even a
//     power cut) afterwards keeps the change, and a crash during one
//     leaves the object either as it was or as written, never torn.
//   - put of an existing ID replaces it; delete of a missing ID is not an
//     error (both are idempotent, so recovery can repeat them).
//   - loadAll calls fn for every object of kind, in ID order; an error
//     from fn stops it and is returned wrapped with the kind and ID.
//   - Errors name the store's file; they are not retriable by the store
//     itself (the appliance counts and logs a failed put).
type stateStore interface {
	put(kind, id string, v any) error
	delete(kind, id string) error
	loadAll(kind string, fn func(id string, b []byte) error) error
	close() error
}

// stateKinds are the kinds the appliance stores; a store creates their
// buckets up front so that reads never need a write transaction.
var stateKinds = []string{"plans", "checkpoints", "restores", "verifications", "triggers",
	"scheduled_operations", "operation_logs", "quotas", "jobs", "cloud_journal", "glance_journal"}

// countingStore counts the committed changes of a store for
// cairn_state_writes_total.
type countingStore struct {
	stateStore
	n *atomic.Int64
}

func (c countingStore) put(kind, id string, v any) error {
	err := c.stateStore.put(kind, id, v)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

func (c countingStore) delete(kind, id string) error {
	err := c.stateStore.delete(kind, id)
	if err == nil {
		c.n.Add(1)
	}
	return err
}
