// Command mctop is a terminal top for a memcached cluster: for each server
// its state, ping round trip, items, gets and sets per second, hit ratio,
// memory, evictions and connections, refreshed every second, with a total
// line. It reads "stats" from every server through one memclient.Client
// (and the client's own view of each server's health) and pings each one,
// like `watch "echo stats | nc host port"` for a whole cluster, but
// readable.
//
//	go run ./mctop -memcached 127.0.0.1:11311:1,127.0.0.1:11312:2,127.0.0.1:11313:3
//	go run ./mctop -once ...        # one frame, then exit: 1 if a server is down
//	go run ./mctop -key user:42 ... # where a key is, its TTL, last access, size
//
// The frame fits the terminal's width, dropping the least needed columns
// first, and `q` quits (the terminal is put back as it was). When its
// output is not a terminal, mctop prints plain frames one after another,
// as wide as $COLUMNS says (or whole).
//
// Rates are measured over the refresh interval; -once takes two samples
// one interval apart, so its rates are real too, prints one frame and
// exits 0 when every server answered, 1 when one did not.
//
// -key K asks every server about the key: `me` (memcached's debug
// command) first, which changes nothing, and on the servers that hold it
// `mg K t l h s f`: TTL left, seconds since the last access, whether it
// was fetched before, value size and flags (memcached 1.6.18's `me`
// reports exp with the wrong sign, so only its slab class is used). The
// mg is a read: from then on the item counts as fetched. It exits 0 when
// a server holds the key, 1 when none does. mctop speaks plain TCP to
// the servers (no TLS, no auth).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Exit codes.
const (
	exitOK    = 0
	exitDown  = 1 // -once: a server did not answer; -key: no server holds the key
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is mctop with the command line args, the environment and the
// standard files; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin, stdout *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("mctop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("memcached", getenv("MEMKIT_MEMCACHED"), "servers as host:port[:weight],... (default $MEMKIT_MEMCACHED)")
	interval := fs.Duration("interval", time.Second, "refresh interval")
	once := fs.Bool("once", false, "sample twice, one interval apart, print one frame and exit: 0 if every server answered, 1 if not")
	key := fs.String("key", "", "inspect this key on every server (where it is, TTL left, last access, size) and exit: 0 if found, 1 if not")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fail := func(msg string) int {
		fmt.Fprintln(stderr, "mctop:", msg)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	list, err := memclient.ParseServers(*servers)
	if err != nil {
		return fail(err.Error())
	}
	if len(list) == 0 {
		return fail("no servers: pass -memcached host:port[:weight],... or set $MEMKIT_MEMCACHED.\n" +
			"`make demo` starts three servers and prints the command line to watch them.")
	}
	if *interval <= 0 {
		return fail("-interval must be positive")
	}
	if *key != "" {
		if err := checkKey(*key); err != nil {
			return fail(err.Error())
		}
		found := printKey(ctx, stdout, list, *key)
		if !found {
			return exitDown
		}
		return exitOK
	}

	screen := newScreen(stdin, stdout, getenv, !*once)
	defer screen.restore()
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	screen.onQuit(quit)
	allUp, err := top(ctx, screen, list, *interval, *once)
	if err != nil && ctx.Err() == nil {
		screen.restore()
		fmt.Fprintln(stderr, "mctop:", err)
		return exitUsage
	}
	if *once && !allUp {
		return exitDown
	}
	return exitOK
}

// top prints a frame every interval until ctx ends (or one frame, with
// once) and reports whether every server answered in the last one.
func top(ctx context.Context, out frameWriter, servers []memclient.Server, interval time.Duration, once bool) (allUp bool, err error) {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	if err != nil {
		return false, err
	}
	defer cl.Close()
	prev := collect(ctx, cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
		cur := collect(ctx, cl)
		w, h := out.size()
		out.frame(render(prev, cur, w), h)
		if once {
			return cur.allUp(), nil
		}
		prev = cur
	}
}

// sample is one reading of the cluster.
type sample struct {
	at     time.Time
	stats  map[string]map[string]string // by address; missing if it failed
	status []memclient.ServerStatus     // in configuration order
	pings  map[string]memclient.PingResult
	err    error // the Stats error, if any
}

// collect reads every server's stats and pings every server, both at
// once. Servers that fail are missing from stats; their failure is in
// err and in their ping.
func collect(ctx context.Context, cl *memclient.Client) sample {
	var s sample
	var pings []memclient.PingResult
	var wg sync.WaitGroup
	wg.Go(func() { pings, _ = cl.Ping(ctx) })
	s.stats, s.err = cl.Stats(ctx)
	wg.Wait()
	s.at, s.status = time.Now(), cl.ServerStatus()
	s.pings = make(map[string]memclient.PingResult, len(pings))
	for _, p := range pings {
		s.pings[p.Addr] = p
	}
	return s
}

// allUp reports whether every server answered both stats and ping.
func (s sample) allUp() bool {
	for _, ss := range s.status {
		_, ok := s.stats[ss.Addr]
		if p, pinged := s.pings[ss.Addr]; !ok || !pinged || p.Err != nil || !ss.Up {
			return false
		}
	}
	return true
}

func num(m map[string]string, k string) uint64 {
	n, _ := strconv.ParseUint(m[k], 10, 64)
	return n
}
