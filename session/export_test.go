package session

import "time"

// SetClock replaces m's clock; call it before m is used.
func SetClock(m *Manager, now func() time.Time) { m.now = now }

// SetStoreClock replaces s's clock; call it before s is used.
func SetStoreClock(s *MemoryStore, now func() time.Time) { s.now = now }
