// Command cluster shows how a memkit client behaves over a cluster of
// memcached servers, in one of three modes (-mode):
//
//   - spread (the default): how keys spread over weighted servers, for
//     weighted ketama (libmemcached, pylibmc) and for python-memcached's
//     modula distribution. It stores a batch of keys through a client of
//     the whole cluster, then asks each server on its own which of them it
//     holds, and deletes them again. It kills nothing and flushes nothing.
//   - gutter: a cache-aside load on three servers, one of which is killed;
//     errors returned to callers, database loads and gutter hits per
//     second after the kill, without and with Config.Gutter.
//   - warmup: 100,000 keys preloaded into three servers, Zipf-distributed
//     gets at a fixed rate, a fourth server added; misses per second on the
//     keys that moved to it, without and with Config.WarmUp.
//
// The spread mode runs against the servers -memcached names:
//
//	go run ./cluster -memcached 127.0.0.1:11311:1,127.0.0.1:11312:2,127.0.0.1:11313:3
//
// Without -memcached (or $MEMKIT_MEMCACHED) it starts three temporary
// memcached servers on free loopback ports with weights 1:2:3, and stops
// them on exit. The gutter and warmup modes always start servers of their
// own, since they kill and add servers, and refuse -memcached:
//
//	go run ./cluster -mode gutter
//	go run ./cluster -mode warmup
//
// Durations, rates and sizes are flags (-h lists them), so that a short
// run is possible: -mode warmup -keys 5000 -duration 5s.
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
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// chunk is how many keys go into one SetMulti or GetMulti call.
const chunk = 1000

// The modes.
const (
	modeSpread = "spread"
	modeGutter = "gutter"
	modeWarmUp = "warmup"
)

// options is the command line.
type options struct {
	mode      string
	memcached string // spread mode only
	keys      int
	load      loadConfig // gutter and warmup modes
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cluster:", err)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch o.mode {
	case modeGutter:
		_, err = runGutter(ctx, os.Stdout, o.load)
	case modeWarmUp:
		_, err = runWarmUp(ctx, os.Stdout, o.load)
	default:
		err = run(ctx, os.Stdout, o.memcached, o.keys)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		stop()
		os.Exit(1)
	}
}

// parseFlags reads the command line. $MEMKIT_MEMCACHED is the default of
// -memcached, as in every example; the modes that kill and add servers
// refuse -memcached, and ignore $MEMKIT_MEMCACHED (saying so on stderr),
// which may be set for the other examples.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", modeSpread, "spread: how keys spread over weighted servers; gutter: a server killed under load, without and with a gutter; warmup: a server added under load, without and with warm-up")
	servers := fs.String("memcached", getenv("MEMKIT_MEMCACHED"), "servers as host:port[:weight],... (default $MEMKIT_MEMCACHED; none: start three temporary servers, weights 1:2:3); spread mode only")
	keys := fs.Int("keys", 0, "how many keys (default 10000; 100000 in warmup mode)")
	rate := fs.Int("rate", 20000, "gutter, warmup: requests per second, paced")
	workers := fs.Int("workers", 16, "gutter, warmup: goroutines making requests")
	before := fs.Duration("before", 2*time.Second, "gutter, warmup: load before the server is killed or added")
	duration := fs.Duration("duration", 0, "gutter, warmup: load after the server is killed or added, all of it measured (default 10s for gutter, 60s for warmup)")
	zipf := fs.Float64("zipf", 1.01, "gutter, warmup: exponent s (> 1) of the Zipf distribution of keys, the first the hottest")
	gutterTTL := fs.Duration("gutter-ttl", 4*time.Second, "gutter: Config.GutterTTL; shorter than -duration, so that values expire from the gutter while they are watched")
	freeze := fs.Bool("freeze", false, "gutter: freeze the server (SIGSTOP: it hangs, as in a partition) instead of killing it")
	warmFor := fs.Duration("warmup-for", 0, "warmup: Config.WarmUp (default: -duration, the whole time measured)")
	seed := fs.Uint64("seed", 1, "gutter, warmup: seed of the key sequence, the same for both runs")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := options{mode: *mode, memcached: *servers, keys: *keys}
	switch o.mode {
	case modeSpread:
		if o.keys == 0 {
			o.keys = 10000
		}
		if o.keys < 1 {
			return options{}, errors.New("-keys must be at least 1")
		}
		return o, nil
	case modeGutter, modeWarmUp:
	default:
		return options{}, fmt.Errorf("unknown -mode %q (want %s, %s or %s)", o.mode, modeSpread, modeGutter, modeWarmUp)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "memcached" })
	if explicit {
		return options{}, fmt.Errorf("-mode %s starts memcached servers of its own, and kills or adds some: it does not take -memcached (that is for -mode spread)", o.mode)
	}
	if o.memcached != "" {
		fmt.Fprintf(stderr, "cluster: -mode %s starts memcached servers of its own: ignoring $MEMKIT_MEMCACHED\n", o.mode)
		o.memcached = ""
	}
	l := loadConfig{
		Keys: o.keys, Rate: *rate, Workers: *workers, Before: *before, After: *duration,
		Zipf: *zipf, Seed: *seed, GutterTTL: *gutterTTL, WarmUp: *warmFor, Freeze: *freeze,
	}
	if l.Freeze && (o.mode != modeGutter || runtime.GOOS == "windows") {
		return options{}, errors.New("-freeze is for -mode gutter, on systems with SIGSTOP")
	}
	if l.Keys == 0 {
		l.Keys = 10000
		if o.mode == modeWarmUp {
			l.Keys = 100000
		}
	}
	if l.After == 0 {
		l.After = 10 * time.Second
		if o.mode == modeWarmUp {
			l.After = 60 * time.Second
		}
	}
	if l.WarmUp == 0 {
		l.WarmUp = l.After
	}
	if err := l.check(); err != nil {
		return options{}, err
	}
	o.keys, o.load = l.Keys, l
	return o, nil
}

func run(ctx context.Context, w io.Writer, list string, n int) error {
	servers, err := memclient.ParseServers(list)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		var cleanup func()
		servers, cleanup, err = launch([]int{1, 2, 3})
		if err != nil {
			return err
		}
		defer cleanup()
		fmt.Fprintf(w, "no -memcached given: started %d temporary memcached servers (stopped on exit)\n", len(servers))
	}
	fmt.Fprintf(w, "%d servers, %d keys\n", len(servers), n)
	for _, d := range []memclient.Distribution{memclient.DistributionKetama, memclient.DistributionModula} {
		res, err := measure(ctx, servers, d, n)
		if err != nil {
			return err
		}
		fmt.Fprintln(w)
		printResult(w, res)
	}
	return nil
}

// share is one server's part of the keys.
type share struct {
	Addr     string
	Weight   int
	Keys     int
	Percent  float64 // of all keys
	Expected float64 // weight / total weight, in percent
}

// result is how n keys spread under one distribution.
type result struct {
	Distribution memclient.Distribution
	Keys         int
	Shares       []share
}

// measure stores n fresh keys through a client of all servers using d,
// counts on each server alone which of them it holds, and deletes them.
func measure(ctx context.Context, servers []memclient.Server, d memclient.Distribution, n int) (result, error) {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Distribution: d})
	if err != nil {
		return result{}, err
	}
	defer cl.Close()

	prefix := "memkit:cluster:" + randomHex(6) + ":"
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	defer func() {
		// Best effort: the keys expire in five minutes anyway.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for i := 0; i < len(keys); i += chunk {
			_ = cl.DeleteMulti(dctx, keys[i:min(i+chunk, len(keys))])
		}
	}()
	for i := 0; i < len(keys); i += chunk {
		batch := keys[i:min(i+chunk, len(keys))]
		items := make([]*memclient.Item, len(batch))
		for j, k := range batch {
			items[j] = &memclient.Item{Key: k, Value: []byte("1"), TTL: 5 * time.Minute}
		}
		if err := cl.SetMulti(ctx, items); err != nil {
			return result{}, fmt.Errorf("%v: storing keys: %w", d, err)
		}
	}

	res := result{Distribution: d, Keys: n}
	totalWeight := 0
	for _, s := range servers {
		totalWeight += weight(s)
	}
	counted := 0
	for _, s := range servers {
		one, err := memclient.New(s.Addr)
		if err != nil {
			return result{}, err
		}
		found := 0
		for i := 0; i < len(keys) && err == nil; i += chunk {
			var got map[string]*memclient.Item
			got, err = one.GetMulti(ctx, keys[i:min(i+chunk, len(keys))])
			found += len(got)
		}
		one.Close()
		if err != nil {
			return result{}, fmt.Errorf("%v: reading %s: %w", d, s.Addr, err)
		}
		counted += found
		res.Shares = append(res.Shares, share{
			Addr:     s.Addr,
			Weight:   weight(s),
			Keys:     found,
			Percent:  100 * float64(found) / float64(n),
			Expected: 100 * float64(weight(s)) / float64(totalWeight),
		})
	}
	if counted != n {
		return result{}, fmt.Errorf("%v: the servers hold %d of the %d keys stored (evictions, or a server listed twice?)", d, counted, n)
	}
	return res, nil
}

func printResult(w io.Writer, r result) {
	name := map[memclient.Distribution]string{
		memclient.DistributionKetama: "ketama: weighted consistent hashing, as libmemcached and pylibmc (ketama_weighted)",
		memclient.DistributionModula: "modula: python-memcached's crc32 modulo a bucket list (each server weight times)",
	}[r.Distribution]
	fmt.Fprintln(w, name)
	fmt.Fprintf(w, "  %-22s %6s %9s %8s %7s\n", "server", "weight", "expected", "keys", "share")
	for _, s := range r.Shares {
		bar := strings.Repeat("#", int(s.Percent/2+0.5))
		fmt.Fprintf(w, "  %-22s %6d %8.1f%% %8d %6.1f%%  %s\n", s.Addr, s.Weight, s.Expected, s.Keys, s.Percent, bar)
	}
	fmt.Fprintf(w, "  %-22s %6s %8.1f%% %8d %6.1f%%\n", "total", "", 100.0, r.Keys, 100.0)
}

func weight(s memclient.Server) int {
	if s.Weight <= 0 {
		return 1
	}
	return s.Weight
}

// launch starts one temporary memcached per weight on a free loopback port.
func launch(weights []int) ([]memclient.Server, func(), error) {
	var procs []*memcachetest.Server
	cleanup := func() {
		for _, p := range procs {
			p.Close()
		}
	}
	var out []memclient.Server
	for _, wt := range weights {
		p, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			cleanup()
			if errors.Is(err, memcachetest.ErrNoBinary) {
				return nil, nil, fmt.Errorf("%w; or pass -memcached host:port:weight,... (see `make demo`)", err)
			}
			return nil, nil, err
		}
		procs = append(procs, p)
		out = append(out, memclient.Server{Addr: p.Addr, Weight: wt})
	}
	return out, cleanup, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
