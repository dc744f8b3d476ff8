package main

// What the gutter and warmup modes share: a paced cache-aside load over
// Zipf-distributed keys, a fake database, per-second counters, and
// finding out on the servers themselves where a ring puts each key.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// loadConfig sets up a load run: Before of load, then the event (a server
// killed or added), then After of load, all of it measured.
type loadConfig struct {
	Keys      int
	Rate      int // requests per second, all goroutines together
	Workers   int
	Before    time.Duration
	After     time.Duration
	Zipf      float64 // s of the Zipf distribution
	Seed      uint64
	GutterTTL time.Duration // gutter mode: Config.GutterTTL
	Freeze    bool          // gutter mode: freeze the server (SIGSTOP) instead of killing it
	WarmUp    time.Duration // warmup mode: Config.WarmUp
}

func (l loadConfig) check() error {
	switch {
	case l.Keys < 2:
		return errors.New("-keys must be at least 2")
	case l.Rate < 1:
		return errors.New("-rate must be at least 1")
	case l.Workers < 1:
		return errors.New("-workers must be at least 1")
	case l.Before < 0:
		return errors.New("-before must not be negative")
	case l.After < time.Second:
		return errors.New("-duration must be at least 1s")
	case !(l.Zipf > 1):
		return errors.New("-zipf must be greater than 1")
	case l.GutterTTL < time.Second:
		return errors.New("-gutter-ttl must be at least 1s (memcached counts TTLs in seconds)")
	case l.WarmUp < 0:
		return errors.New("-warmup-for must not be negative")
	}
	return nil
}

// valueTTL is the TTL of the values the load stores (the gutter clamps it).
const valueTTL = time.Hour

// valueSize is the size of a stored value: the time it was loaded, padded.
const valueSize = 100

// loadedValue is what the fake database returns: the time of the load
// (Unix nanoseconds, big-endian), padded to valueSize.
func loadedValue(at time.Time) []byte {
	v := make([]byte, valueSize)
	binary.BigEndian.PutUint64(v, uint64(at.UnixNano()))
	for i := 8; i < len(v); i++ {
		v[i] = '.'
	}
	return v
}

// loadedAt returns the time a value was loaded from the fake database.
func loadedAt(v []byte) (time.Time, bool) {
	if len(v) < 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), true
}

// keyNames returns the n keys of a run; key i is the i-th hottest.
func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "memkit:cluster:" + strconv.Itoa(i)
	}
	return keys
}

// second counts what happened in one second of a run.
type second struct {
	Requests    atomic.Int64 // requests started (a get, then a load and a set on a miss)
	Errors      atomic.Int64 // cache calls that returned an error other than a miss
	Loads       atomic.Int64 // loads from the fake database
	GutterHits  atomic.Int64 // gutter mode: gets answered by the gutter
	MovedMisses atomic.Int64 // warmup mode: misses on keys that moved to the new server
	OtherMisses atomic.Int64 // warmup mode: misses on the other keys
}

// series is a run's seconds: the ones before the event (negative
// indexes), then the ones after it.
type series struct {
	before int // how many seconds come before the event
	secs   []second
	origin atomic.Int64 // the event, Unix nanos; moved once it happens
}

func newSeries(before, after time.Duration, event time.Time) *series {
	b := int((before + time.Second - 1) / time.Second)
	a := int((after + time.Second - 1) / time.Second)
	s := &series{before: b, secs: make([]second, b+a)}
	s.origin.Store(event.UnixNano())
	return s
}

// at returns the second t falls in, or nil past the end.
func (s *series) at(t time.Time) *second {
	d := t.UnixNano() - s.origin.Load()
	i := int(d / int64(time.Second))
	if d < 0 {
		i = -int((-d + int64(time.Second) - 1) / int64(time.Second))
	}
	i += s.before
	if i < 0 {
		i = 0
	}
	if i >= len(s.secs) {
		return nil
	}
	return &s.secs[i]
}

// label is the second index i as printed: seconds from the event.
func (s *series) label(i int) int { return i - s.before }

// total sums f over the seconds after the event.
func (s *series) total(f func(*second) *atomic.Int64) int64 {
	var n int64
	for i := s.before; i < len(s.secs); i++ {
		n += f(&s.secs[i]).Load()
	}
	return n
}

// driver paces requests: the n-th is due n/rate seconds after start, and
// the load stops at end, which moves once the event has happened.
type driver struct {
	start time.Time
	rate  int64
	n     atomic.Int64
	end   atomic.Int64 // Unix nanos
}

// next waits until the next request is due and returns false when the
// load is over or ctx is done. Requests fall behind (and are then made
// as fast as the workers can) when the client cannot keep up.
func (d *driver) next(ctx context.Context) bool {
	n := d.n.Add(1) - 1
	due := d.start.Add(time.Duration(n * int64(time.Second) / d.rate))
	if due.UnixNano() >= d.end.Load() {
		return false
	}
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil && time.Now().UnixNano() < d.end.Load()
}

// drive runs the load: cfg.Workers goroutines, each with its own Zipf
// sequence of key indexes (from cfg.Seed), calling request for each key
// at cfg.Rate in all, from now for cfg.Before, then event (which returns
// when it happened), then cfg.After more. It returns the series of
// seconds around the event as request filled it.
func drive(ctx context.Context, cfg loadConfig, event func() time.Time, request func(s *series, key int)) *series {
	start := time.Now()
	planned := start.Add(cfg.Before)
	s := newSeries(cfg.Before, cfg.After, planned)
	d := &driver{start: start, rate: int64(cfg.Rate)}
	d.end.Store(planned.Add(cfg.After).UnixNano())
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z := rand.NewZipf(rand.New(rand.NewPCG(cfg.Seed, uint64(w))), cfg.Zipf, 1, uint64(cfg.Keys-1))
			for d.next(ctx) {
				request(s, int(z.Uint64()))
			}
		}()
	}
	t := time.NewTimer(time.Until(planned))
	select {
	case <-ctx.Done():
	case <-t.C:
		at := event()
		s.origin.Store(at.UnixNano())
		d.end.Store(at.Add(cfg.After).UnixNano())
	}
	t.Stop()
	wg.Wait()
	return s
}

// placement stores keys through a client of servers, asks each server
// on its own which of them it holds, deletes them, and returns for each
// key the index of the server that held it: where the ring puts it, as
// the servers themselves report it.
func placement(ctx context.Context, servers []memclient.Server, keys []string) ([]int, error) {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for i := 0; i < len(keys); i += chunk {
		batch := keys[i:min(i+chunk, len(keys))]
		items := make([]*memclient.Item, len(batch))
		for j, k := range batch {
			items[j] = &memclient.Item{Key: k, Value: []byte("p"), TTL: time.Minute}
		}
		if err := cl.SetMulti(ctx, items); err != nil {
			return nil, fmt.Errorf("placing keys: %w", err)
		}
	}
	where := make(map[string]int, len(keys))
	for si, s := range servers {
		one, err := memclient.New(s.Addr)
		if err != nil {
			return nil, err
		}
		for i := 0; i < len(keys) && err == nil; i += chunk {
			var got map[string]*memclient.Item
			got, err = one.GetMulti(ctx, keys[i:min(i+chunk, len(keys))])
			for k := range got {
				where[k] = si
			}
		}
		one.Close()
		if err != nil {
			return nil, fmt.Errorf("placing keys: reading %s: %w", s.Addr, err)
		}
	}
	for i := 0; i < len(keys); i += chunk {
		if err := cl.DeleteMulti(ctx, keys[i:min(i+chunk, len(keys))]); err != nil {
			return nil, fmt.Errorf("placing keys: deleting them: %w", err)
		}
	}
	out := make([]int, len(keys))
	for i, k := range keys {
		si, ok := where[k]
		if !ok {
			return nil, fmt.Errorf("placing keys: %s is on no server (evicted?)", k)
		}
		out[i] = si
	}
	return out, nil
}

// preloaded returns a client of mc with every key stored through it, as
// loaded now.
func preloaded(ctx context.Context, mc memclient.Config, keys []string) (*memclient.Client, error) {
	cl, err := memclient.NewFromConfig(mc)
	if err != nil {
		return nil, err
	}
	v := loadedValue(time.Now())
	for i := 0; i < len(keys); i += chunk {
		batch := keys[i:min(i+chunk, len(keys))]
		items := make([]*memclient.Item, len(batch))
		for j, k := range batch {
			items[j] = &memclient.Item{Key: k, Value: v, TTL: valueTTL}
		}
		if err := cl.SetMulti(ctx, items); err != nil {
			cl.Close()
			return nil, fmt.Errorf("preloading keys: %w", err)
		}
	}
	return cl, nil
}

// cacheAside returns the request of a load: a get of keys[k] through cl;
// on a miss, a load from the fake database and a set; on an error, a
// load (the cache failed the caller, who goes to the database); all of
// it counted in the second the request was issued. For what a mode
// counts on its own, hit (if not nil) is called on each hit, and miss
// (if not nil) on each miss, before the load.
func cacheAside(ctx context.Context, cl *memclient.Client, keys []string,
	hit func(sec *second, issued time.Time, k int, it *memclient.Item),
	miss func(sec *second, issued time.Time, k int)) func(s *series, k int) {
	return func(s *series, k int) {
		issued := time.Now()
		sec := s.at(issued)
		if sec == nil {
			return
		}
		sec.Requests.Add(1)
		key := keys[k]
		it, err := cl.Get(ctx, key)
		switch {
		case err == nil:
			if hit != nil {
				hit(sec, issued, k, it)
			}
		case errors.Is(err, memclient.ErrCacheMiss):
			if miss != nil {
				miss(sec, issued, k)
			}
			sec.Loads.Add(1)
			v := loadedValue(time.Now())
			if err := cl.Set(ctx, &memclient.Item{Key: key, Value: v, TTL: valueTTL}); err != nil {
				sec.Errors.Add(1)
			}
		default:
			// The cache failed the caller, who goes to the database.
			sec.Errors.Add(1)
			sec.Loads.Add(1)
		}
	}
}

// twoRuns prints "run i of 2: name ..." and calls run(i), for the runs 0
// and 1 of a mode, restarting ps between them (fresh servers, the same
// ring); run prints the end of its line.
func twoRuns(w io.Writer, ps procs, names [2]string, run func(i int) error) error {
	for i, name := range names {
		if i > 0 {
			if err := ps.restart(); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "run %d of 2: %s ...", i+1, name)
		if err := run(i); err != nil {
			fmt.Fprintln(w)
			return err
		}
	}
	return nil
}

// placed is a load's servers, its keys, and which of them the ring of all
// the servers puts on one of the servers.
type placed struct {
	ps   procs
	keys []string
	on   []bool // on[i]: the ring puts keys[i] on that server
	n    int    // how many keys it puts there
}

// startPlaced starts n servers and finds out, on the servers themselves,
// which of the run's keys (keyNames(keys)) the ring of all n puts on the
// server target. The caller closes p.ps.
func startPlaced(ctx context.Context, n, target, keys int) (*placed, error) {
	ps, err := startProcs(n)
	if err != nil {
		return nil, err
	}
	p := &placed{ps: ps, keys: keyNames(keys)}
	where, err := placement(ctx, ps.servers(), p.keys)
	if err != nil {
		ps.close()
		return nil, err
	}
	p.on = make([]bool, len(p.keys))
	for i, si := range where {
		if si == target {
			p.on[i] = true
			p.n++
		}
	}
	return p, nil
}

// percent is the share of the keys on that server, in percent.
func (p *placed) percent() float64 { return 100 * float64(p.n) / float64(len(p.keys)) }

// procs is a set of temporary memcached servers.
type procs []*memcachetest.Server

// startProcs starts n temporary memcached servers on free loopback ports.
func startProcs(n int) (procs, error) {
	var ps procs
	for i := 0; i < n; i++ {
		p, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			ps.close()
			if errors.Is(err, memcachetest.ErrNoBinary) {
				return nil, fmt.Errorf("%w (these modes start servers of their own)", err)
			}
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// restart restarts every server empty, on the same address, so that a
// second run sees fresh servers placed on the same ring as the first.
func (ps procs) restart() error {
	for _, p := range ps {
		if err := p.Restart(); err != nil {
			return err
		}
	}
	return nil
}

func (ps procs) close() {
	for _, p := range ps {
		p.Close()
	}
}

func (ps procs) servers() []memclient.Server {
	out := make([]memclient.Server, len(ps))
	for i, p := range ps {
		out[i] = memclient.Server{Addr: p.Addr}
	}
	return out
}

// statInt returns one counter of the server at addr.
func statInt(ctx context.Context, addr, name string) (int64, error) {
	cl, err := memclient.New(addr)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	st, err := cl.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(st[addr][name], 10, 64)
}

// percentFewer is how much smaller with is than without, in percent.
func percentFewer(without, with int64) float64 {
	if without == 0 {
		return 0
	}
	return 100 * float64(without-with) / float64(without)
}
