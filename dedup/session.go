package dedup

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// session is one backup in progress. It holds what prune must not remove
// before the backup commits: chunks it found already stored (pins) and the
// packs it wrote.
type session struct {
	mu       sync.Mutex
	started  time.Time
	pins     map[ChunkID]struct{}
	pending  map[ChunkID]PackID // chunks this session stored, and where
	newPacks map[PackID]struct{}
	// deltaRefs are the chunks this session's deltas take pages from,
	// checked before the commit (checkDeltaRefs).
	deltaRefs map[ChunkID]PackID
}

func (r *Repository) startSession() *session {
	s := &session{
		started:   r.now(),
		pins:      make(map[ChunkID]struct{}),
		pending:   make(map[ChunkID]PackID),
		newPacks:  make(map[PackID]struct{}),
		deltaRefs: make(map[ChunkID]PackID),
	}
	r.gate.Lock()
	r.sessions[s] = struct{}{}
	r.gate.Unlock()
	return s
}

func (r *Repository) endSession(s *session) {
	r.gate.Lock()
	delete(r.sessions, s)
	if r.pruning {
		r.ended = append(r.ended, s) // see Repository.pruneMu
	}
	r.gate.Unlock()
}

// dedupLookup decides whether a chunk must be stored. It returns the pack
// holding an existing copy, or claimed=true when the caller is the first of
// this session to store it.
func (r *Repository) dedupLookup(s *session, id ChunkID) (pack PackID, exists bool, claimed bool, err error) {
	s.mu.Lock()
	if p, ok := s.pending[id]; ok {
		s.mu.Unlock()
		return p, true, false, nil
	}
	s.mu.Unlock()
	if r.idx != nil {
		r.gate.RLock()
		loc, ok, err := r.idx.Lookup(id)
		if err == nil && ok {
			s.mu.Lock()
			s.pins[id] = struct{}{}
			s.mu.Unlock()
		}
		r.gate.RUnlock()
		if err != nil {
			return PackID{}, false, false, fmt.Errorf("index lookup: %w", err)
		}
		if ok {
			return loc.Pack, true, false, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pending[id]; ok {
		return p, true, false, nil
	}
	s.pending[id] = PackID{} // claimed; the packer fills in the pack
	return PackID{}, false, true, nil
}

// pin records that the session references an existing chunk (taken from
// the parent checkpoint without a lookup).
func (s *session) pin(id ChunkID) {
	s.mu.Lock()
	s.pins[id] = struct{}{}
	s.mu.Unlock()
}

// pinRefs pins the chunks a new delta takes pages from.
func (s *session) pinRefs(refs []deltaRef) {
	s.mu.Lock()
	for _, ref := range refs {
		s.pins[ref.id] = struct{}{}
		s.deltaRefs[ref.id] = ref.pack
	}
	s.mu.Unlock()
}

// newCheckpointID returns a UUIDv7: time-ordered, so IDs sort by creation,
// and a valid UUID for the Karbor-compatible API.
func newCheckpointID(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(t.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[:6], ts[2:])
	b[6] = 0x70 | (b[6] & 0x0f)
	b[8] = 0x80 | (b[8] & 0x3f)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
