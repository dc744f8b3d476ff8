package session

import "time"

// SetClock replaces m's clock; call it before m is used.
func SetClock(m *Manager, now func() time.Time) { m.now = now }

// SetStoreClock replaces s's clock; call it before s is used.
func SetStoreClock(s *MemoryStore, now func() time.Time) { s.now = now }

// StoreLen returns the number of records in s, expired ones included
// until they are swept.
func StoreLen(s *MemoryStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}
