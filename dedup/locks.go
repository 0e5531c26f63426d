package dedup

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Lock objects let cairn processes that share a repository's shard stores
// (two appliances on one set of RADOS pools, say) see each other; within one
// process the gate and session pins do that job. See docs/ceph.md,
// "Concurrent writers".
//
// Every backup and every prune that may delete writes "locks/<id>", a small
// JSON object, to every shard store, rewrites it every lockRefresh while it
// runs and deletes it at the end. A lock not rewritten for lockStaleAfter is
// stale: its process is gone (or stalled, and then it knows, see
// repoLock.lapsed). Both sides write their own lock before they list the
// others', so of a backup and a prune that overlap at least one sees the
// other: a prune that sees a live backup deletes nothing, and a backup that
// sees a prune waits for it to end and then checks its packs before it
// commits.
const (
	lockPrefix     = "locks/"
	lockRefresh    = time.Minute
	lockStaleAfter = 5 * time.Minute
	lockBackup     = "backup"
	lockPrune      = "prune"
)

// lockInfo is the content of a lock object.
type lockInfo struct {
	Kind      string    `json:"kind"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Refreshed time.Time `json:"refreshed"`
}

func (l lockInfo) String() string {
	return fmt.Sprintf("%s on %s, pid %d, since %s", l.Kind, l.Host, l.PID, l.Started.Local().Format(time.DateTime))
}

// live reports whether the lock's process may still run: it refreshed the
// lock recently enough at now (a time in the future, clock skew, counts),
// and, when it ran on this host, its pid still exists, so that a backup
// killed a moment ago does not hold up prune for minutes. (Hosts sharing a
// repository must have distinct host names.)
func (l lockInfo) live(now time.Time) bool {
	if now.Sub(l.Refreshed) >= lockStaleAfter {
		return false
	}
	if h, _ := os.Hostname(); l.Host == h && l.PID > 0 {
		err := unix.Kill(l.PID, 0)
		return err == nil || errors.Is(err, unix.EPERM)
	}
	return true
}

// ours reports whether this process wrote the lock.
func (l lockInfo) ours() bool {
	h, _ := os.Hostname()
	return l.Host == h && l.PID == os.Getpid()
}

// repoLock is a lock object this process holds.
type repoLock struct {
	r    *Repository
	name string

	mu     sync.Mutex
	info   lockInfo
	lastOK time.Time // local time of the last write that reached a store
	lapsed bool      // a gap between writes was long enough to look stale

	stop chan struct{}
	done chan struct{}
}

// takeLock writes a lock of kind to every shard store and keeps it fresh
// until release. One store that took it is enough: readers list them all.
func (r *Repository) takeLock(ctx context.Context, kind string) (*repoLock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &repoLock{
		r: r, name: lockPrefix + hex.EncodeToString(randomBytes(12)),
		info: lockInfo{Kind: kind, Host: host, PID: os.Getpid(), Started: now, Refreshed: now},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	go l.refresh()
	return l, nil
}

func (l *repoLock) write(ctx context.Context) error {
	l.mu.Lock()
	l.info.Refreshed = time.Now().UTC()
	b, err := json.Marshal(l.info)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	var errs []error
	ok := 0
	for i, s := range l.r.stores {
		if err := s.Put(ctx, l.name, b); err != nil {
			errs = append(errs, fmt.Errorf("shard store %d: %w", i, err))
			continue
		}
		ok++
	}
	if ok == 0 {
		return fmt.Errorf("write lock %s: %w", l.name, errors.Join(errs...))
	}
	l.mu.Lock()
	now := time.Now()
	if !l.lastOK.IsZero() && now.Sub(l.lastOK) > lockStaleAfter-lockRefresh {
		l.lapsed = true
	}
	l.lastOK = now
	l.mu.Unlock()
	return nil
}

func (l *repoLock) refresh() {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), lockRefresh)
			if err := l.write(ctx); err != nil {
				l.r.log("refresh %s: %v", l.name, err)
			}
			cancel()
		}
	}
}

// expired reports whether another process may have taken the lock for
// stale at some point: a refresh came too late, or none came for too long.
// The margin of lockRefresh covers clocks up to a minute apart.
func (l *repoLock) expired() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lapsed || time.Since(l.lastOK) > lockStaleAfter-lockRefresh
}

// release stops refreshing and deletes the lock from every store.
func (l *repoLock) release() {
	select {
	case <-l.stop:
		return // released already
	default:
	}
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), lockRefresh)
	defer cancel()
	for i, s := range l.r.stores {
		if err := s.Delete(ctx, l.name); err != nil {
			l.r.log("remove %s from shard store %d: %v (it goes stale by itself)", l.name, i, err)
		}
	}
}

// storedLock is a lock object found in the stores.
type storedLock struct {
	name string
	lockInfo
}

// otherLocks returns the locks of other processes, stale ones included,
// oldest first. Every store is listed; fewer than need successful listings
// is an error. An unreadable lock counts as live, of unknown kind.
func (r *Repository) otherLocks(ctx context.Context, need int) ([]storedLock, error) {
	where := make(map[string]int) // lock name -> a store that has it
	var errs []error
	for i, s := range r.stores {
		err := s.List(ctx, lockPrefix, func(name string, _ int64) error {
			where[name] = i
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("list locks in shard store %d: %w", i, err))
		}
	}
	if len(r.stores)-len(errs) < need {
		return nil, errors.Join(errs...)
	}
	var locks []storedLock
	for name, i := range where {
		b, err := r.stores[i].Get(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // released since the listing
		}
		l := storedLock{name: name}
		if json.Unmarshal(b, &l.lockInfo) != nil {
			l.lockInfo = lockInfo{Kind: "unknown (" + strings.TrimPrefix(name, lockPrefix) + ")", Refreshed: time.Now()}
		}
		if !l.ours() {
			locks = append(locks, l)
		}
	}
	sort.Slice(locks, func(i, j int) bool { return locks[i].Started.Before(locks[j].Started) })
	return locks, nil
}

// liveLocks filters locks to the live ones of kind ("" for any).
func liveLocks(locks []storedLock, kind string) []storedLock {
	var out []storedLock
	now := time.Now()
	for _, l := range locks {
		if l.live(now) && (kind == "" || l.Kind == kind) {
			out = append(out, l)
		}
	}
	return out
}

// describeLocks names the processes holding locks, for messages.
func describeLocks(locks []storedLock) string {
	var parts []string
	for _, l := range locks {
		parts = append(parts, fmt.Sprintf("%s pid %d", l.Host, l.PID))
	}
	return strings.Join(parts, ", ")
}
