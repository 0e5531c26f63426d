package api

import (
	"encoding/json"
	"runtime"
	"sync"
	"weak"

	"cairn/appliance"
)

// encodedCache keeps the JSON of the checkpoints the appliance publishes.
// It publishes a new immutable copy at every change, so a copy's encoding
// never goes stale, and a page of 1,000 checkpoints encodes only those
// that changed since the last list. Keys are weak: a copy the appliance
// replaced or dropped is collected, and its entry goes with it.
type encodedCache struct {
	m sync.Map // weak.Pointer[appliance.Checkpoint] -> json.RawMessage
}

// get returns the encoding of cp, a published copy no one changes.
func (c *encodedCache) get(cp *appliance.Checkpoint) json.RawMessage {
	k := weak.Make(cp)
	if v, ok := c.m.Load(k); ok {
		return v.(json.RawMessage)
	}
	b, _ := json.Marshal(viewCheckpoint(*cp)) // API objects always encode
	if _, loaded := c.m.LoadOrStore(k, json.RawMessage(b)); !loaded {
		runtime.AddCleanup(cp, func(k weak.Pointer[appliance.Checkpoint]) { c.m.Delete(k) }, k)
	}
	return b
}
