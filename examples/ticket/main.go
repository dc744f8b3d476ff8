// Command ticket replays the G88 ticket race from the python-memcached
// tutorials: several booking processes record their sales of flight G88 in
// one shared memcached counter.
//
// The naive way (get the count, add one, set it) loses sales: two buyers
// read the same count and both write count+1. The gets/cas way
// (objcache.Update: read with its CAS token, write only if nobody wrote
// since, otherwise read again) keeps every sale. The program prints both
// counts next to the number of tickets really sold.
//
//	go run ./ticket -memcached 127.0.0.1:11311
//
// Without -memcached (or $MEMKIT_MEMCACHED) it starts a temporary memcached
// on a free loopback port and stops it on exit.
//
// For a bare counter memcached's incr (memclient.Increment) is atomic on
// the server and is the better tool; gets/cas is what you need as soon as
// the value is a record (seats left, the list of passengers...).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

func main() {
	servers := flag.String("memcached", os.Getenv("MEMKIT_MEMCACHED"), "servers as host:port[:weight],... (default $MEMKIT_MEMCACHED; none: start a temporary server)")
	buyers := flag.Int("buyers", 10, "concurrent booking processes (one client each)")
	sales := flag.Int("sales", 100, "tickets each buyer sells")
	flag.Parse()
	if *buyers < 1 || *sales < 1 {
		fmt.Fprintln(os.Stderr, "ticket: -buyers and -sales must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *servers, *buyers, *sales); err != nil {
		fmt.Fprintln(os.Stderr, "ticket:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, list string, buyers, sales int) error {
	servers, err := memclient.ParseServers(list)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		srv, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			if errors.Is(err, memcachetest.ErrNoBinary) {
				return fmt.Errorf("%w; or pass -memcached host:port (see `make demo`)", err)
			}
			return err
		}
		defer srv.Close()
		servers = []memclient.Server{{Addr: srv.Addr}}
		fmt.Fprintf(w, "no -memcached given: started a temporary memcached on %s (stopped on exit)\n", srv.Addr)
	}
	res, err := race(ctx, servers, buyers, sales)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "flight G88: %d buyers sold %d tickets each, %d in all\n", buyers, sales, res.Sold)
	fmt.Fprintf(w, "  naive get/set counter:  %6d  (%d sales lost)\n", res.Naive, res.Sold-res.Naive)
	fmt.Fprintf(w, "  gets/cas (Update):      %6d  (%d compare-and-swap retries)\n", res.CAS, res.Attempts-res.Sold)
	return nil
}

// result is the outcome of one race.
type result struct {
	Sold     int // tickets really sold
	Naive    int // what the get/set counter says
	CAS      int // what the gets/cas counter says
	Attempts int // how often Update's function ran (Sold + retries)
}

// race has buyers goroutines, each with its own client as a separate
// booking process would, record sales tickets each in two counters: one
// with get then set, one with objcache.Update.
func race(ctx context.Context, servers []memclient.Server, buyers, sales int) (result, error) {
	// A fresh prefix per run: counters start from nothing.
	opts := objcache.Options{Prefix: "memkit:ticket:" + randomHex(6) + ":", UpdateRetries: 100000}
	caches := make([]*objcache.Cache, buyers)
	for i := range caches {
		cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
		if err != nil {
			return result{}, err
		}
		defer cl.Close()
		if caches[i], err = objcache.New(cl, opts); err != nil {
			return result{}, err
		}
	}

	var attempts atomic.Int64
	naive := func(ctx context.Context, c *objcache.Cache) error {
		n, err := objcache.Get[int](ctx, c, "G88:naive")
		if err != nil && !errors.Is(err, objcache.ErrCacheMiss) {
			return err
		}
		// Between this get and the set below another buyer may set
		// the same n+1: one sale is lost.
		return c.Set(ctx, "G88:naive", n+1, 0)
	}
	safe := func(ctx context.Context, c *objcache.Cache) error {
		_, err := objcache.Update(ctx, c, "G88:cas", 0, func(n int, _ bool) (int, error) {
			attempts.Add(1)
			return n + 1, nil
		})
		return err
	}

	for _, sell := range []func(context.Context, *objcache.Cache) error{naive, safe} {
		var wg sync.WaitGroup
		errs := make([]error, buyers)
		for i, c := range caches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range sales {
					if err := sell(ctx, c); err != nil {
						errs[i] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return result{}, err
		}
	}

	res := result{Sold: buyers * sales, Attempts: int(attempts.Load())}
	var err error
	if res.Naive, err = objcache.Get[int](ctx, caches[0], "G88:naive"); err != nil {
		return result{}, fmt.Errorf("reading the naive counter: %w", err)
	}
	if res.CAS, err = objcache.Get[int](ctx, caches[0], "G88:cas"); err != nil {
		return result{}, fmt.Errorf("reading the gets/cas counter: %w", err)
	}
	for _, k := range []string{"G88:naive", "G88:cas"} {
		_ = caches[0].Delete(ctx, k)
	}
	return res, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
