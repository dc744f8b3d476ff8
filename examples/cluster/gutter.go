package main

// The gutter mode: one of three servers killed under a cache-aside load,
// without and then with a gutter server (Config.Gutter), as in "Scaling
// Memcache at Facebook" (NSDI 2013, §3.3).

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/memkit/memkit/memclient"
)

// gutterRun is what one run of the gutter mode saw.
type gutterRun struct {
	Gutter      bool
	Victim      string        // the server killed (or frozen)
	KillTook    time.Duration // how long killing (or freezing) it took
	VictimShare float64       // its share of the keys, in percent
	Secs        *series
	// Over the seconds after the kill (or freeze):
	Requests, Errors, Loads, GutterHits int64
	// GutterServerHits is the gutter server's own get_hits counter.
	GutterServerHits int64
	// Oldest is the age of the oldest value the gutter served, from its
	// load to the start of the read that returned it; TooOld counts
	// those older than GutterTTL.
	Oldest time.Duration
	TooOld int64
}

// gutterReport is the gutter mode's result.
type gutterReport struct {
	Without, With gutterRun
	ErrorsFewer   float64 // percent
	LoadsFewer    float64 // percent
}

// runGutter runs the gutter mode and prints what it saw to w.
func runGutter(ctx context.Context, w io.Writer, cfg loadConfig) (gutterReport, error) {
	fmt.Fprintf(w, "gutter: 3 memcached servers, %d keys (Zipf s=%g), cache-aside at %d requests/s from %d goroutines\n",
		cfg.Keys, cfg.Zipf, cfg.Rate, cfg.Workers)
	fmt.Fprintf(w, "  (get; on a miss load from a fake database and set; on an error load from the database);\n")
	fmt.Fprintf(w, "  one server %s after %v, then %v watched; GutterTTL %v\n", killed(cfg), cfg.Before, cfg.After, cfg.GutterTTL)
	const victim = 0
	p, err := startPlaced(ctx, 3, victim, cfg.Keys)
	if err != nil {
		return gutterReport{}, err
	}
	defer p.ps.close()
	share := p.percent()

	var rep gutterReport
	err = twoRuns(w, p.ps, [2]string{"without a gutter", "with a gutter"}, func(i int) error {
		withGutter := i == 1
		r, err := gutterOnce(ctx, cfg, p, victim, withGutter)
		if err != nil {
			return err
		}
		r.VictimShare = share
		fmt.Fprintf(w, " %s %s (%.1f%% of the keys) in %v\n", killed(cfg), r.Victim, share, r.KillTook.Round(time.Millisecond))
		if withGutter {
			rep.With = r
		} else {
			rep.Without = r
		}
		return nil
	})
	if err != nil {
		return gutterReport{}, err
	}
	rep.ErrorsFewer = percentFewer(rep.Without.Errors, rep.With.Errors)
	rep.LoadsFewer = percentFewer(rep.Without.Loads, rep.With.Loads)
	printGutter(w, cfg, rep)
	return rep, nil
}

// gutterOnce runs the load on fresh servers p.ps, with or without a
// gutter server, and kills p.ps[victim] after cfg.Before.
func gutterOnce(ctx context.Context, cfg loadConfig, p *placed, victim int, withGutter bool) (gutterRun, error) {
	ps := p.ps
	mc := memclient.Config{Servers: ps.servers(), GutterTTL: cfg.GutterTTL}
	var gutter procs
	if withGutter {
		var err error
		if gutter, err = startProcs(1); err != nil {
			return gutterRun{}, err
		}
		defer gutter.close()
		mc.Gutter = gutter.servers()
	}
	cl, err := preloaded(ctx, mc, p.keys)
	if err != nil {
		return gutterRun{}, err
	}
	defer cl.Close()

	var killedAt atomic.Int64 // Unix nanos when the victim was killed
	var killTook time.Duration
	var oldest, tooOld atomic.Int64
	hit := func(sec *second, issued time.Time, k int, it *memclient.Item) {
		if k0 := killedAt.Load(); p.on[k] && k0 != 0 && issued.UnixNano() > k0 {
			// The victim is dead (or frozen): the gutter answered.
			sec.GutterHits.Add(1)
			if at, ok := loadedAt(it.Value); ok {
				age := issued.Sub(at)
				for {
					o := oldest.Load()
					if int64(age) <= o || oldest.CompareAndSwap(o, int64(age)) {
						break
					}
				}
				if age > cfg.GutterTTL {
					tooOld.Add(1)
				}
			}
		}
	}
	kill := func() time.Time {
		at := time.Now()
		killedAt.Store(at.UnixNano())
		if cfg.Freeze {
			ps[victim].Freeze() // returns once the process is stopped
		} else {
			ps[victim].Kill() // returns once the process is gone
		}
		killTook = time.Since(at)
		return at
	}
	s := drive(ctx, cfg, kill, cacheAside(ctx, cl, p.keys, hit, nil))
	if err := ctx.Err(); err != nil {
		return gutterRun{}, err
	}
	r := gutterRun{
		Gutter:     withGutter,
		Victim:     ps[victim].Addr,
		KillTook:   killTook,
		Secs:       s,
		Requests:   s.total(func(x *second) *atomic.Int64 { return &x.Requests }),
		Errors:     s.total(func(x *second) *atomic.Int64 { return &x.Errors }),
		Loads:      s.total(func(x *second) *atomic.Int64 { return &x.Loads }),
		GutterHits: s.total(func(x *second) *atomic.Int64 { return &x.GutterHits }),
		Oldest:     time.Duration(oldest.Load()),
		TooOld:     tooOld.Load(),
	}
	if withGutter {
		if r.GutterServerHits, err = statInt(ctx, gutter[0].Addr, "get_hits"); err != nil {
			return gutterRun{}, fmt.Errorf("reading the gutter server's stats: %w", err)
		}
	}
	return r, nil
}

func printGutter(w io.Writer, cfg loadConfig, rep gutterReport) {
	a, b := rep.Without, rep.With
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%7s | %-31s | %s\n", "", "without a gutter", "with a gutter")
	fmt.Fprintf(w, "%7s | %9s %9s %9s | %9s %9s %9s %11s\n", "second", "requests", "errors", "DB loads", "requests", "errors", "DB loads", "gutter hits")
	for i := range a.Secs.secs {
		x, y := &a.Secs.secs[i], &b.Secs.secs[i]
		mark := ""
		if a.Secs.label(i) == 0 {
			mark = "  <- a server " + killed(cfg)
		}
		fmt.Fprintf(w, "%7d | %9d %9d %9d | %9d %9d %9d %11d%s\n", a.Secs.label(i),
			x.Requests.Load(), x.Errors.Load(), x.Loads.Load(),
			y.Requests.Load(), y.Errors.Load(), y.Loads.Load(), y.GutterHits.Load(), mark)
	}
	fmt.Fprintf(w, "%7s | %9d %9d %9d | %9d %9d %9d %11d\n", "after", a.Requests, a.Errors, a.Loads, b.Requests, b.Errors, b.Loads, b.GutterHits)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "errors returned to callers in the %v after the %s: %d without a gutter, %d with: %.2f%% fewer (target: at least 90%%)\n",
		cfg.After, kill(cfg), a.Errors, b.Errors, rep.ErrorsFewer)
	fmt.Fprintf(w, "database loads in the %v after the %s: %d without a gutter, %d with: %.2f%% fewer\n",
		cfg.After, kill(cfg), a.Loads, b.Loads, rep.LoadsFewer)
	verdict := "none older than GutterTTL"
	if b.TooOld > 0 {
		verdict = fmt.Sprintf("%d OLDER than GutterTTL, by at most %v (memcached counts a TTL in whole seconds of a clock that ticks once a second, and a late tick keeps an item a little longer; the age counts from the load, before the set)",
			b.TooOld, (b.Oldest - cfg.GutterTTL).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "values served from the gutter: %d (the gutter server counted %d get hits), the oldest %.3fs after its load (GutterTTL %v): %s\n",
		b.GutterHits, b.GutterServerHits, b.Oldest.Seconds(), cfg.GutterTTL, verdict)
}

// killed and kill name what happens to the server: "killed" and "kill",
// or "frozen" and "freeze".
func killed(cfg loadConfig) string {
	if cfg.Freeze {
		return "frozen"
	}
	return "killed"
}

func kill(cfg loadConfig) string {
	if cfg.Freeze {
		return "freeze"
	}
	return "kill"
}
