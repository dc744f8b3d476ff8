package session

import (
	"context"
	"sync"
	"time"
)

// DefaultSweepInterval is how often, at most, a MemoryStore scans all its
// records for expired ones when SweepInterval is zero.
const DefaultSweepInterval = time.Minute

// MemoryStore is an in-process Store: the Manager's default, for
// development and single-process apps. Records expire after their TTL;
// expired records are dropped when accessed and by a sweep piggybacked on
// writes at most every SweepInterval, so the store runs no goroutine.
//
// The zero value is ready to use. It is safe for concurrent use.
type MemoryStore struct {
	// SweepInterval bounds how often a write scans every record for
	// expired ones. 0 means DefaultSweepInterval.
	SweepInterval time.Duration

	now func() time.Time // clock seam for tests; nil means time.Now

	mu        sync.Mutex         // protects the fields below
	items     map[string]memItem // by key
	version   uint64             // last version handed out
	lastSweep time.Time
	closed    bool
}

type memItem struct {
	data    []byte
	flags   uint32
	version uint64
	expires time.Time // zero: never
}

var (
	_ Store       = (*MemoryStore)(nil)
	_ MultiLoader = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

func (s *MemoryStore) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// lookup returns key's live item; s.mu must be held.
func (s *MemoryStore) lookup(key string, now time.Time) (memItem, bool) {
	it, ok := s.items[key]
	if !ok {
		return memItem{}, false
	}
	if !it.expires.IsZero() && !now.Before(it.expires) {
		delete(s.items, key)
		return memItem{}, false
	}
	return it, true
}

func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// Load implements Store. It returns ErrClosed after Close.
func (s *MemoryStore) Load(ctx context.Context, key string, touch time.Duration) (Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, false, storeErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, false, storeErr(ErrClosed)
	}
	now := s.clock()
	it, ok := s.lookup(key, now)
	if !ok {
		return Entry{}, false, nil
	}
	if touch > 0 {
		it.expires = expiry(now, touch)
		s.items[key] = it
	}
	data := append([]byte(nil), it.data...)
	return Entry{Data: data, Flags: it.flags, Version: it.version}, true, nil
}

// LoadMulti implements MultiLoader. It returns ErrClosed after Close.
func (s *MemoryStore) LoadMulti(ctx context.Context, reqs []LoadRequest) (map[string]Entry, error) {
	out := make(map[string]Entry, len(reqs))
	for _, rq := range reqs {
		e, found, err := s.Load(ctx, rq.Key, rq.Touch)
		if err != nil {
			return nil, err
		}
		if found {
			out[rq.Key] = e
		}
	}
	return out, nil
}

// Save implements Store. It returns ErrConflict when the record's version
// is not e.Version, and ErrClosed after Close.
func (s *MemoryStore) Save(ctx context.Context, key string, e Entry, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return storeErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storeErr(ErrClosed)
	}
	now := s.clock()
	s.sweep(now)
	cur, ok := s.lookup(key, now)
	if (e.Version == 0 && ok) || (e.Version != 0 && (!ok || cur.version != e.Version)) {
		return ErrConflict
	}
	if s.items == nil {
		s.items = make(map[string]memItem)
	}
	s.version++
	s.items[key] = memItem{
		data:    append([]byte(nil), e.Data...),
		flags:   e.Flags,
		version: s.version,
		expires: expiry(now, ttl),
	}
	return nil
}

// Delete implements Store. It returns ErrClosed after Close.
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return storeErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storeErr(ErrClosed)
	}
	delete(s.items, key)
	return nil
}

// sweep drops expired records if SweepInterval has passed; s.mu must be
// held.
func (s *MemoryStore) sweep(now time.Time) {
	every := s.SweepInterval
	if every <= 0 {
		every = DefaultSweepInterval
	}
	if now.Sub(s.lastSweep) < every {
		return
	}
	s.lastSweep = now
	for k, it := range s.items {
		if !it.expires.IsZero() && !now.Before(it.expires) {
			delete(s.items, k)
		}
	}
}

// Close drops every record; later calls fail with ErrClosed. The store
// runs no goroutine, so nothing outlives it.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.items = nil
	return nil
}
