package main

// The warmup mode: a fourth server added (SetServers) to three under a
// cache-aside load of Zipf-distributed gets, without and then with
// Config.WarmUp (mcrouter's WarmUpRoute).

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/memkit/memkit/memclient"
)

// warmRun is what one run of the warmup mode saw.
type warmRun struct {
	WarmUp time.Duration // 0: off
	Secs   *series
	// Over the seconds after the addition:
	Requests, MovedMisses, OtherMisses, Errors, Loads int64
	// NewServerItems is how many items the new server holds at the end.
	NewServerItems int64
}

// warmReport is the warmup mode's result.
type warmReport struct {
	Moved         int // keys the four-server ring puts on the new server
	Without, With warmRun
	MissesFewer   float64 // misses on moved keys, percent
}

// runWarmUp runs the warmup mode and prints what it saw to w.
func runWarmUp(ctx context.Context, w io.Writer, cfg loadConfig) (warmReport, error) {
	fmt.Fprintf(w, "warmup: %d keys preloaded into 3 memcached servers; gets of Zipf-distributed keys (s=%g) at %d/s from %d goroutines,\n",
		cfg.Keys, cfg.Zipf, cfg.Rate, cfg.Workers)
	fmt.Fprintf(w, "  cache-aside (a miss loads from a fake database and sets); a 4th server added (SetServers) after %v, then %v watched\n",
		cfg.Before, cfg.After)
	p, err := startPlaced(ctx, 4, 3, cfg.Keys)
	if err != nil {
		return warmReport{}, err
	}
	defer p.ps.close()
	rep := warmReport{Moved: p.n}
	fmt.Fprintf(w, "  %d keys (%.1f%%) move to the new server: those the four-server ring puts there\n",
		rep.Moved, p.percent())
	warms := [2]time.Duration{0, cfg.WarmUp}
	names := [2]string{"without warm-up", "without warm-up"}
	if cfg.WarmUp > 0 {
		names[1] = fmt.Sprintf("with WarmUp %v", cfg.WarmUp)
	}
	if err := p.ps.restart(); err != nil { // fresh servers, the same ring
		return warmReport{}, err
	}
	err = twoRuns(w, p.ps, names, func(i int) error {
		warm := warms[i]
		r, err := warmOnce(ctx, cfg, p, warm)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, " done")
		if warm > 0 {
			rep.With = r
		} else {
			rep.Without = r
		}
		return nil
	})
	if err != nil {
		return warmReport{}, err
	}
	rep.MissesFewer = percentFewer(rep.Without.MovedMisses, rep.With.MovedMisses)
	printWarmUp(w, cfg, rep)
	return rep, nil
}

// warmOnce preloads the keys into p.ps[:3], runs the load, and adds
// p.ps[3] after cfg.Before.
func warmOnce(ctx context.Context, cfg loadConfig, p *placed, warm time.Duration) (warmRun, error) {
	ps := p.ps
	all := ps.servers()
	cl, err := preloaded(ctx, memclient.Config{Servers: all[:3], WarmUp: warm}, p.keys)
	if err != nil {
		return warmRun{}, err
	}
	defer cl.Close()
	var added atomic.Int64 // Unix nanos of the addition
	var addErr error
	miss := func(sec *second, issued time.Time, k int) {
		if a := added.Load(); p.on[k] && a != 0 && issued.UnixNano() >= a {
			sec.MovedMisses.Add(1)
		} else {
			sec.OtherMisses.Add(1)
		}
	}
	add := func() time.Time {
		at := time.Now()
		addErr = cl.SetServers(all...)
		added.Store(at.UnixNano())
		return at
	}
	s := drive(ctx, cfg, add, cacheAside(ctx, cl, p.keys, nil, miss))
	if err := ctx.Err(); err != nil {
		return warmRun{}, err
	}
	if addErr != nil {
		return warmRun{}, fmt.Errorf("adding a server: %w", addErr)
	}
	r := warmRun{
		WarmUp:      warm,
		Secs:        s,
		Requests:    s.total(func(x *second) *atomic.Int64 { return &x.Requests }),
		MovedMisses: s.total(func(x *second) *atomic.Int64 { return &x.MovedMisses }),
		OtherMisses: s.total(func(x *second) *atomic.Int64 { return &x.OtherMisses }),
		Errors:      s.total(func(x *second) *atomic.Int64 { return &x.Errors }),
		Loads:       s.total(func(x *second) *atomic.Int64 { return &x.Loads }),
	}
	if r.NewServerItems, err = statInt(ctx, ps[3].Addr, "curr_items"); err != nil {
		return warmRun{}, fmt.Errorf("reading the new server's stats: %w", err)
	}
	return r, nil
}

func printWarmUp(w io.Writer, cfg loadConfig, rep warmReport) {
	a, b := rep.Without, rep.With
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%7s | %-35s | %s\n", "", "without warm-up", fmt.Sprintf("with WarmUp %v", b.WarmUp))
	fmt.Fprintf(w, "%7s | %9s %12s %12s | %9s %12s %12s\n", "", "", "misses on", "other", "", "misses on", "other")
	fmt.Fprintf(w, "%7s | %9s %12s %12s | %9s %12s %12s\n", "second", "gets", "moved keys", "misses", "gets", "moved keys", "misses")
	for i := range a.Secs.secs {
		x, y := &a.Secs.secs[i], &b.Secs.secs[i]
		mark := ""
		if a.Secs.label(i) == 0 {
			mark = "  <- a 4th server added"
		}
		fmt.Fprintf(w, "%7d | %9d %12d %12d | %9d %12d %12d%s\n", a.Secs.label(i),
			x.Requests.Load(), x.MovedMisses.Load(), x.OtherMisses.Load(),
			y.Requests.Load(), y.MovedMisses.Load(), y.OtherMisses.Load(), mark)
	}
	fmt.Fprintf(w, "%7s | %9d %12d %12d | %9d %12d %12d\n", "after", a.Requests, a.MovedMisses, a.OtherMisses, b.Requests, b.MovedMisses, b.OtherMisses)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "misses on moved keys in the %v after the addition: %d without warm-up, %d with: %.2f%% fewer (target: at least 80%%)\n",
		cfg.After, a.MovedMisses, b.MovedMisses, rep.MissesFewer)
	fmt.Fprintf(w, "database loads: %d without warm-up, %d with; errors: %d without, %d with\n", a.Loads, b.Loads, a.Errors, b.Errors)
	fmt.Fprintf(w, "the new server holds at the end: %d items without warm-up, %d with\n", a.NewServerItems, b.NewServerItems)
}
