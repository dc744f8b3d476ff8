// Command mctop is a terminal top for a memcached cluster: for each server
// its state, items, gets and sets per second, hit ratio, memory, evictions
// and connections, refreshed every second, with a total line. It reads
// "stats" from every server through one memclient.Client (and the client's
// own view of each server's health), like
// `watch "echo stats | nc host port"` for a whole cluster, but readable.
//
//	go run ./mctop -memcached 127.0.0.1:11311:1,127.0.0.1:11312:2,127.0.0.1:11313:3
//	go run ./mctop -once ...   # one frame, then exit
//
// Rates are measured over the refresh interval; -once takes two samples
// one interval apart and prints one frame.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/memkit/memkit/memclient"
)

func main() {
	servers := flag.String("memcached", os.Getenv("MEMKIT_MEMCACHED"), "servers as host:port[:weight],... (default $MEMKIT_MEMCACHED)")
	interval := flag.Duration("interval", time.Second, "refresh interval")
	once := flag.Bool("once", false, "print one frame and exit")
	flag.Parse()
	list, err := memclient.ParseServers(*servers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mctop:", err)
		os.Exit(2)
	}
	if len(list) == 0 {
		fmt.Fprintln(os.Stderr, "mctop: no servers: pass -memcached host:port[:weight],... or set $MEMKIT_MEMCACHED.\n"+
			"`make demo` starts three servers and prints the command line to watch them.")
		os.Exit(2)
	}
	if *interval <= 0 {
		fmt.Fprintln(os.Stderr, "mctop: -interval must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := top(ctx, os.Stdout, list, *interval, *once, isTerminal(os.Stdout)); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "mctop:", err)
		stop()
		os.Exit(1)
	}
}

// top prints a frame every interval until ctx ends (or one frame, with
// once). clear clears the screen before each frame.
func top(ctx context.Context, w io.Writer, servers []memclient.Server, interval time.Duration, once, clear bool) error {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	if err != nil {
		return err
	}
	defer cl.Close()
	prev := collect(ctx, cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		cur := collect(ctx, cl)
		if clear {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
		}
		render(w, prev, cur)
		if once {
			return nil
		}
		prev = cur
	}
}

// sample is one reading of the cluster.
type sample struct {
	at     time.Time
	stats  map[string]map[string]string // by address; missing if it failed
	status []memclient.ServerStatus     // in configuration order
	err    error                        // the Stats error, if any
}

// collect reads every server's stats. Servers that fail are missing from
// stats; their failure is in err.
func collect(ctx context.Context, cl *memclient.Client) sample {
	st, err := cl.Stats(ctx)
	return sample{at: time.Now(), stats: st, status: cl.ServerStatus(), err: err}
}

// row is one line of the table.
type row struct {
	name, state                string
	items, bytes, limit, conns uint64
	gets, sets, hits, misses   float64 // per second over the interval
	allHits, allMisses         uint64  // since the server started
	evictions                  uint64  // since the server started
	evictRate                  float64
	version                    string
	uptime                     uint64
}

func num(m map[string]string, k string) uint64 {
	n, _ := strconv.ParseUint(m[k], 10, 64)
	return n
}

// rate is (b-a)/dt, or 0 when the counter went backwards (a restart).
func rate(a, b uint64, dt float64) float64 {
	if b < a || dt <= 0 {
		return 0
	}
	return float64(b-a) / dt
}

// render prints one frame from two samples.
func render(w io.Writer, prev, cur sample) {
	dt := cur.at.Sub(prev.at).Seconds()
	var rows []row
	total := row{name: "total"}
	up := 0
	for _, ss := range cur.status {
		r := row{name: ss.Addr + "/" + strconv.Itoa(ss.Weight), state: "up"}
		m, ok := cur.stats[ss.Addr]
		switch {
		case !ok && !ss.Up:
			r.state = "DOWN"
		case !ok:
			r.state = "ERROR"
		}
		if ok {
			up++
			// Rates over the interval; over the uptime for a server that
			// was missing from the previous sample or restarted since.
			p, pdt := prev.stats[ss.Addr], dt
			if p == nil || num(p, "uptime") > num(m, "uptime") {
				p, pdt = map[string]string{}, max(float64(num(m, "uptime")), 1)
			}
			r.items, r.bytes, r.limit = num(m, "curr_items"), num(m, "bytes"), num(m, "limit_maxbytes")
			r.conns, r.evictions = num(m, "curr_connections"), num(m, "evictions")
			r.allHits, r.allMisses = num(m, "get_hits"), num(m, "get_misses")
			r.gets = rate(num(p, "cmd_get"), num(m, "cmd_get"), pdt)
			r.sets = rate(num(p, "cmd_set"), num(m, "cmd_set"), pdt)
			r.hits = rate(num(p, "get_hits"), r.allHits, pdt)
			r.misses = rate(num(p, "get_misses"), r.allMisses, pdt)
			r.evictRate = rate(num(p, "evictions"), r.evictions, pdt)
			r.version, r.uptime = m["version"], num(m, "uptime")
			total.items += r.items
			total.bytes += r.bytes
			total.limit += r.limit
			total.conns += r.conns
			total.evictions += r.evictions
			total.allHits += r.allHits
			total.allMisses += r.allMisses
			total.gets += r.gets
			total.sets += r.sets
			total.hits += r.hits
			total.misses += r.misses
			total.evictRate += r.evictRate
		}
		rows = append(rows, r)
	}
	total.state = fmt.Sprintf("%d/%d up", up, len(cur.status))

	fmt.Fprintf(w, "mctop - %s - %d servers - every %.1fs\n\n", cur.at.Format("15:04:05"), len(cur.status), dt)
	fmt.Fprintf(w, "%-24s %-8s %9s %9s %9s %7s %7s %19s %9s %7s %6s\n",
		"SERVER/WEIGHT", "STATE", "ITEMS", "GET/s", "SET/s", "HIT%", "HIT%ALL", "MEMORY", "EVICTIONS", "EVICT/s", "CONNS")
	for _, r := range append(rows, total) {
		if r.state == "DOWN" || r.state == "ERROR" {
			fmt.Fprintf(w, "%-24s %s\n", r.name, r.state)
			continue
		}
		fmt.Fprintf(w, "%-24s %-8s %9d %9.1f %9.1f %7s %7s %19s %9d %7.1f %6d\n",
			r.name, r.state, r.items, r.gets, r.sets,
			ratio(r.hits, r.misses), ratio(float64(r.allHits), float64(r.allMisses)),
			mem(r.bytes, r.limit), r.evictions, r.evictRate, r.conns)
	}
	// The client's view: health and failures seen by this process.
	var notes []string
	for _, ss := range cur.status {
		if !ss.Up || ss.Errors > 0 || ss.Timeouts > 0 {
			n := fmt.Sprintf("%s: up=%t errors=%d timeouts=%d", ss.Addr, ss.Up, ss.Errors, ss.Timeouts)
			if ss.LastError != "" {
				n += " last error: " + ss.LastError
			}
			notes = append(notes, n)
		}
	}
	if cur.err != nil {
		notes = append(notes, "stats: "+cur.err.Error())
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
}

// ratio formats hits/(hits+misses) as a percentage, "-" with no gets.
func ratio(hits, misses float64) string {
	if hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*hits/(hits+misses))
}

// mem formats used/limit bytes.
func mem(used, limit uint64) string {
	return fmt.Sprintf("%s/%s", size(used), size(limit))
}

func size(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
