package memclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Owed deletes. A key written, deleted or invalidated while its server was
// bypassed (down, its keys served by the gutter or failing), or whose
// delete or invalidation failed (the server may be only unreachable: a
// partition, a SIGSTOP), is owed to that server as a delete. A server
// owing deletes is bypassed until it has replayed them, so that it never
// serves a value changed meanwhile; past Config.MaxPendingDeletes it is
// flushed instead. The prober replays them as soon as the server answers.

// owed is one server's owed deletes.
type owed struct {
	keys     map[string]struct{}
	overflow bool   // more than fit: flush the server before use
	dropped  uint64 // keys not recorded because of overflow
}

var errOwed = errors.New("deletes owed: replaying them before the server serves again")

// owe records key as a delete owed to s and bypasses s until it is
// replayed.
func (s *server) owe(key string) {
	if s.gutter {
		return // gutter values expire within GutterTTL: nothing to replay
	}
	s.omu.Lock()
	s.oweLocked(key)
	s.omu.Unlock()
	s.bypass(errOwed)
}

// oweIfBypassed records key as owed to s if s is bypassed, and reports
// whether it was: a write then goes elsewhere. Deciding under omu keeps a
// write from slipping between the replay's last look and s coming back.
func (s *server) oweIfBypassed(key string) bool {
	if s.gutter {
		return s.down.Load()
	}
	s.omu.Lock()
	defer s.omu.Unlock()
	if !s.down.Load() {
		return false
	}
	s.oweLocked(key)
	return true
}

func (s *server) oweLocked(key string) {
	o := &s.owed
	if o.overflow {
		o.dropped++
		return
	}
	if o.keys == nil {
		o.keys = make(map[string]struct{})
	}
	o.keys[key] = struct{}{}
	if len(o.keys) > s.cfg.maxPendingDeletes() {
		o.dropped += uint64(len(o.keys))
		o.keys, o.overflow = nil, true
	}
}

// bypass takes s out of service without closing its connections (it may
// be healthy) and has the prober try to bring it back at once.
func (s *server) bypass(reason error) {
	s.hmu.Lock()
	changed := !s.down.Load()
	if changed {
		s.down.Store(true)
		s.downSince = s.client.now()
		s.backoff = s.cfg.retryInterval()
		s.lastErr = reason
	}
	s.nextProbe = s.client.now()
	s.hmu.Unlock()
	if changed {
		s.stateChanged(false, reason)
	}
	s.client.wakeProber()
}

// recover tries to bring a down server back: a probe, then the owed
// deletes replayed (or a flush), then up. It reports whether s is up.
func (s *server) recover(ctx context.Context) bool {
	err := s.probe(ctx)
	if err == nil {
		err = s.replay(ctx)
	}
	if err == nil {
		s.omu.Lock()
		clean := len(s.owed.keys) == 0 && !s.owed.overflow
		if clean {
			s.markUp()
		}
		s.omu.Unlock()
		if clean {
			s.stateChanged(true, nil)
			return true
		}
		err = errOwed // written while we replayed: go again
	}
	now := s.client.now()
	s.hmu.Lock()
	s.lastErr = err
	if err == errOwed {
		s.nextProbe = now
	} else {
		s.backoff = min(s.backoff*2, s.cfg.maxRetryInterval())
		s.nextProbe = now.Add(s.backoff)
	}
	s.hmu.Unlock()
	return false
}

// replayChunk bounds the deletes sent in one pipelined batch.
const replayChunk = 1000

// replay sends s its owed deletes (or a flush_all after an overflow),
// forgetting each one that was done. The deletes owed meanwhile wait for
// the next round.
func (s *server) replay(ctx context.Context) error {
	s.omu.Lock()
	overflow := s.owed.overflow
	var keys []string
	for k := range s.owed.keys {
		keys = append(keys, k)
		if len(keys) == replayChunk {
			break
		}
	}
	s.omu.Unlock()
	c := s.client
	if overflow {
		if s.cfg.BehindProxy {
			return errors.New("deletes owed past MaxPendingDeletes, and a proxy cannot pass flush_all")
		}
		now, deadline := c.times(ctx)
		r := getRequest(opFlushAll)
		owned, err := c.doOn(ctx, s, r, now, deadline)
		if owned {
			putRequest(r)
		}
		if err != nil {
			return fmt.Errorf("flushing after owed deletes overflowed: %w", err)
		}
		s.omu.Lock()
		s.owed.overflow = false
		s.owed.keys = nil
		s.omu.Unlock()
		return nil
	}
	if len(keys) == 0 {
		return nil
	}
	b := &batch{srv: s, keys: keys}
	for _, k := range keys {
		r := getRequest(opDelete)
		r.key = k
		b.reqs = append(b.reqs, r)
	}
	errs := make(MultiError)
	_ = c.finishSingles(ctx, map[*server]*batch{s: b}, errs, ErrCacheMiss)
	s.omu.Lock()
	for _, k := range keys {
		if _, failed := errs[k]; !failed {
			delete(s.owed.keys, k)
		}
	}
	s.omu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("replaying owed deletes: %w", errs)
	}
	return nil
}

// pendingDeletes returns how many deletes s owes and how many overflowed.
func (s *server) pendingDeletes() (n int, dropped uint64) {
	s.omu.Lock()
	defer s.omu.Unlock()
	return len(s.owed.keys), s.owed.dropped
}

// probeConn checks that s answers, on a connection of its own.
func (s *server) probe(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.dialTimeout())
	c, err := s.dial(dctx)
	cancel()
	if err != nil {
		return err
	}
	err = c.ping(ctx, time.Now().Add(s.cfg.timeout()))
	c.fail(errProbeDone)
	return err
}
