// Command bench compares memkit with its peers side by side in one run:
// memclient against bradfitz/gomemcache, grafana/gomemcache,
// rainycape/memcache, QuangTung97/go-memcache and a minimal batched client
// that shows the machine's limit, memkit sessions against
// alexedwards/scs and gorilla/sessions (both on memcached stores built here
// on gomemcache), and the serializer's codecs and compressors. It starts
// its own memcached servers on loopback ports and kills them on exit. See
// README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// Defaults of the command-line flags.
const (
	DefaultRounds         = 11
	DefaultDuration       = 300 * time.Millisecond
	DefaultWarmup         = 200 * time.Millisecond
	DefaultSerialDuration = 50 * time.Millisecond
	DefaultMaxOps         = 5_000_000
	DefaultClients        = 16
)

// config is what one run measures and how long.
type config struct {
	rounds         int           // runs of each implementation, interleaved
	duration       time.Duration // length of one run
	warmup         time.Duration // untimed run after setup
	serialDuration time.Duration // length of one serializer run
	maxOps         int           // bound on the operations of one run
	clients        int           // concurrent HTTP clients in session benchmarks
	conns          int           // memclient's MaxConnsPerServer; 0 means its default
	only           *regexp.Regexp
	impl           *regexp.Regexp
	memcached      string // memcached binary; "" means look it up
	// loadgen is the load generator of the session benchmarks under
	// external load ("wrk" or "go"; "" or "none": those are not run), wrk
	// its binary; httpConns is its connections (0: DefaultHTTPConns),
	// httpDuration the length of one run (0: duration), serverProfile
	// the prefix of the server processes' CPU profiles ("": none).
	loadgen, wrk  string
	httpConns     int
	httpDuration  time.Duration
	serverProfile string
	// limitDepth is the batched client's requests per batch (0:
	// limitDepth, 64) and keys the most keys each implementation stores
	// (0: numKeys, 1000). Only the tests change them, to keep the smoke
	// test short.
	limitDepth, keys int
}

func (c config) match(name string) bool { return c.only == nil || c.only.MatchString(name) }

func (c config) httpConnections() int {
	if c.httpConns > 0 {
		return c.httpConns
	}
	return DefaultHTTPConns
}

func (c config) httpDur() time.Duration {
	if c.httpDuration > 0 {
		return c.httpDuration
	}
	return c.duration
}

// httpCases are the selected session benchmarks under external load.
func (c config) httpCases() []httpCase {
	if c.loadgen == "" || c.loadgen == "none" {
		return nil
	}
	var out []httpCase
	for _, hc := range httpCases(c.loadgen, c.httpConnections()) {
		if c.match(hc.name) {
			out = append(out, hc)
		}
	}
	return out
}

// setupFunc prepares one implementation for one benchmark on the given
// memcached servers: it connects, stores the data the operation needs, and
// returns the operation and a function that releases everything.
type setupFunc func(ctx context.Context, servers []string) (op, func(), error)

type impl struct {
	name  string
	setup setupFunc
	// workers, when set, is how many goroutines run the operation instead
	// of the benchmark's goroutines (the batched client runs one per
	// connection); batch, when set, is how many operations one call of
	// it performs.
	workers, batch int
}

// benchCase is one comparison. impls[0] is memkit; the others are peers
// (and, for Get, the batched client).
type benchCase struct {
	name       string
	goroutines int
	servers    int // memcached servers it uses
	impls      []impl
	countCalls bool // count the memcached commands served per operation
}

// caseResult holds the results of one comparison, in impl order: the
// medians, and every round's sample for paired comparisons.
type caseResult struct {
	name string
	// ext names the external load generator of a session benchmark
	// whose servers ran in processes of their own; "" for the others.
	ext     string
	impls   []string
	results []result
	// samples[i][r] is impl i's sample of round r. In a round the
	// implementations ran back to back, so ratios between them are paired
	// comparisons that load from elsewhere on the machine disturbs little.
	samples [][]sample
}

// report is everything one run measured.
type report struct {
	machine string
	cases   []caseResult
	serial  []serialResult
	notes   []string // what was skipped, and why
}

func main() {
	serveIfAsked() // a server process of the external-load benchmarks
	var cfg config
	var only, implRe, cpuprofile string
	flag.IntVar(&cfg.rounds, "rounds", DefaultRounds, "timed runs of each implementation per benchmark, interleaved (A B, B A, A B ...); medians are reported")
	flag.DurationVar(&cfg.duration, "duration", DefaultDuration, "length of one timed run")
	flag.DurationVar(&cfg.warmup, "warmup", DefaultWarmup, "untimed run of each implementation before the timed ones")
	flag.DurationVar(&cfg.serialDuration, "serial-duration", DefaultSerialDuration, "length of one serializer run")
	flag.IntVar(&cfg.maxOps, "max-ops", DefaultMaxOps, "most operations in one run")
	flag.IntVar(&cfg.clients, "clients", DefaultClients, "concurrent HTTP clients in the session benchmarks")
	flag.IntVar(&cfg.conns, "conns", 0, "memclient MaxConnsPerServer for memkit (0: memclient.DefaultMaxConnsPerServer)")
	flag.StringVar(&only, "only", "", "run only the benchmarks whose name matches this regexp (e.g. '^get/', 'session', 'serializer')")
	flag.StringVar(&implRe, "impl", "", "run only the implementations whose name matches this regexp (e.g. memkit)")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file; samples are labelled impl=<name> and case=<name> (go tool pprof -tagfocus impl=memkit)")
	flag.StringVar(&cfg.memcached, "memcached", "", "memcached binary (default: memcached on PATH)")
	flag.StringVar(&cfg.loadgen, "loadgen", DefaultLoadgen, "load generator of the session benchmarks whose servers run in processes of their own: wrk, go (in the bench process) or none")
	flag.StringVar(&cfg.wrk, "wrk", DefaultWrk, "wrk binary (the default, when missing, is installed with apt-get)")
	flag.IntVar(&cfg.httpConns, "http-conns", DefaultHTTPConns, "connections of the load generator")
	flag.DurationVar(&cfg.httpDuration, "http-duration", DefaultHTTPDuration, "length of one load generator run (wrk: whole seconds, at least 1 s, also for the warm-up)")
	flag.StringVar(&cfg.serverProfile, "server-cpuprofile", "", "write a CPU profile of each server process to PREFIX.<benchmark>.<impl>")
	flag.Parse()
	if err := cfg.compile(only, implRe); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.loadgen == "wrk" && len(cfg.httpCases()) > 0 {
		ensureWrk(cfg.wrk, os.Stderr)
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	rep, err := run(ctx, cfg, os.Stderr)
	if rep != nil {
		printReport(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if ctx.Err() != nil {
			stop()
			pprof.StopCPUProfile()
			os.Exit(130)
		}
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func (c *config) compile(only, implRe string) error {
	if c.rounds < 1 || c.duration <= 0 || c.maxOps < 1 || c.clients < 1 || c.conns < 0 || c.httpConns < 0 || c.httpDuration < 0 {
		return errors.New("-rounds, -duration, -max-ops and -clients must be positive, -conns, -http-conns and -http-duration not negative")
	}
	switch c.loadgen {
	case "", "none", "wrk", "go":
	default:
		return fmt.Errorf("-loadgen %q: want wrk, go or none", c.loadgen)
	}
	var err error
	if only != "" {
		if c.only, err = regexp.Compile(only); err != nil {
			return fmt.Errorf("-only: %w", err)
		}
	}
	if implRe != "" {
		if c.impl, err = regexp.Compile(implRe); err != nil {
			return fmt.Errorf("-impl: %w", err)
		}
	}
	return nil
}

// run starts as many memcached servers as the selected benchmarks need
// (up to six), runs every selected benchmark and kills the servers.
// Progress goes to logw. On error (or when ctx is cancelled) it returns
// what it measured so far with the error.
func run(ctx context.Context, cfg config, logw io.Writer) (*report, error) {
	opts := serverOptions(cfg.memcached)
	bin, err := memcachetest.Lookup(opts)
	if err != nil {
		return nil, err
	}
	rep := &report{machine: machine(bin)}
	cp := clientParams{conns: cfg.conns, limitDepth: cfg.limitDepth, keys: cfg.keys}
	if cp.limitDepth == 0 {
		cp.limitDepth = limitDepth
	}
	var cases []benchCase
	need := 0
	all := append(clientCases(cp), sessionCases(cfg.clients, cfg.conns)...)
	for _, bc := range append(all, objcacheCases(cp)...) {
		if cfg.match(bc.name) {
			cases = append(cases, bc)
			need = max(need, bc.servers)
		}
	}
	hcases := cfg.httpCases()
	if len(hcases) > 0 {
		need = max(need, 3)
	}
	servers, err := startServers(opts, need)
	if err != nil {
		return nil, err
	}
	defer closeAll(servers)
	e := env{servers: memcachetest.Addrs(servers), probe: newCPUProbe(servers)}
	if need > 0 {
		statsClient, err := memclient.New(e.servers...)
		if err != nil {
			return nil, err
		}
		defer statsClient.Close()
		e.calls = statsCounter(statsClient)
	}
	for _, bc := range cases {
		fmt.Fprintf(logw, "%s ...\n", bc.name)
		cr, err := runCase(ctx, cfg, bc, e)
		if cr != nil {
			rep.cases = append(rep.cases, *cr)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", bc.name, err)
		}
	}
	if len(hcases) > 0 && ctx.Err() == nil {
		if err := runHTTPCases(ctx, cfg, hcases, e, rep, logw); err != nil {
			return rep, err
		}
	}
	if ctx.Err() == nil {
		fmt.Fprintf(logw, "serializer ...\n")
		rep.serial = runSerializer(ctx, cfg)
	}
	return rep, ctx.Err()
}

// env is what the benchmarks of one run share: the memcached servers (a
// benchmark on n servers uses the first n), the CPU probe, and the
// counter of memcached commands.
type env struct {
	servers []string
	probe   cpuProbe
	calls   callCounter
}

// runCase sets up every implementation of bc, warms each up, then runs
// them in turn, cfg.rounds times, and returns their medians.
func runCase(ctx context.Context, cfg config, bc benchCase, e env) (*caseResult, error) {
	type live struct {
		impl
		op         op
		close      func()
		goroutines int
		batch      int
		samples    []sample
		calls      []float64
		labels     pprof.LabelSet
	}
	if bc.servers > len(e.servers) {
		return nil, fmt.Errorf("needs %d servers, %d started", bc.servers, len(e.servers))
	}
	servers := e.servers[:bc.servers]
	calls := e.calls
	if !bc.countCalls {
		calls = nil
	}
	var lives []*live
	defer func() {
		for _, l := range lives {
			l.close()
		}
	}()
	for _, im := range bc.impls {
		if cfg.impl != nil && !cfg.impl.MatchString(im.name) {
			continue
		}
		l := &live{impl: im, labels: pprof.Labels("impl", im.name, "case", bc.name),
			goroutines: bc.goroutines, batch: max(1, im.batch)}
		if im.workers > 0 {
			l.goroutines = im.workers
		}
		var err error
		// Background goroutines started here (connections) inherit the
		// profiler labels.
		pprof.Do(ctx, l.labels, func(ctx context.Context) {
			l.op, l.close, err = im.setup(ctx, servers)
		})
		if err != nil {
			return nil, fmt.Errorf("%s setup: %w", im.name, err)
		}
		lives = append(lives, l)
	}
	if len(lives) == 0 {
		return nil, nil // -impl matched none of them
	}
	for _, l := range lives {
		pprof.Do(ctx, l.labels, func(ctx context.Context) {
			runOp(ctx, l.goroutines, l.batch, cfg.warmup, cfg.maxOps, l.op, nil)
		})
	}
	for round := 0; round < cfg.rounds && ctx.Err() == nil; round++ {
		// Each round starts one implementation later (A B, B A, A B ...
		// for two), so that none always runs right after the same one.
		for k := range lives {
			l := lives[(round+k)%len(lives)]
			var before uint64
			if calls != nil {
				var err error
				if before, err = calls(ctx); err != nil {
					return nil, err
				}
			}
			var s sample
			pprof.Do(ctx, l.labels, func(ctx context.Context) {
				s = runOp(ctx, l.goroutines, l.batch, cfg.duration, cfg.maxOps, l.op, e.probe)
			})
			l.samples = append(l.samples, s)
			if calls != nil {
				after, err := calls(ctx)
				if err != nil {
					return nil, err
				}
				if s.ops > 0 {
					l.calls = append(l.calls, float64(after-before)/float64(s.ops))
				}
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cr := &caseResult{name: bc.name}
	for _, l := range lives {
		cr.impls = append(cr.impls, l.name)
		cr.results = append(cr.results, summarize(l.samples, l.calls))
		cr.samples = append(cr.samples, l.samples)
	}
	return cr, nil
}

func machine(memcachedBin string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d), %s, %s, host %s, %s",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		runtime.Version(), memcachedVersion(memcachedBin), host, time.Now().UTC().Format(time.RFC3339))
}
