// Command demo is what `make demo` runs: it starts three memcached servers
// on free loopback ports with weights 1:2:3, builds and starts the example
// shop (examples/webapp) against them, and prints what to try.
//
//	cd examples && go run ./demo [-addr 127.0.0.1:8080]
//
// The demo owns its processes: they live in process groups of their own,
// on Linux the kernel kills them if the demo dies (PR_SET_PDEATHSIG), and
// the demo stops them on SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed
// terminal, a dropped SSH connection, a killed tmux session), and when the
// shop exits. No way of ending the demo leaves a memcached or a shop behind
// (scripts/test-demo-hangup.sh checks the closed terminal). It says what it
// is doing at each step, the first build of the shop included.
//
// Run it from the examples module (make demo does): it builds the shop with
// `go build github.com/memkit/memkit/examples/webapp`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
)

// DefaultAddr is where the shop listens unless -addr (or $DEMO_ADDR) says
// otherwise; when it is busy the demo picks a free port.
const DefaultAddr = "127.0.0.1:8080"

// shopPackage is what the demo builds and runs.
const shopPackage = "github.com/memkit/memkit/examples/webapp"

func main() {
	def := DefaultAddr
	if a := os.Getenv("DEMO_ADDR"); a != "" {
		def = a
	}
	addr := flag.String("addr", def, "address of the shop (default $DEMO_ADDR or "+DefaultAddr+"; a free port if busy)")
	flag.Parse()

	// Every way the demo is asked to end: Ctrl-C, kill, a closed terminal.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, os.Stdout, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

// run starts everything, waits for ctx to end or the shop to exit, and
// stops everything it started.
func run(ctx context.Context, out io.Writer, addr string) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "demo: "+format+"\n", args...) }

	say("starting three memcached servers and the shop, pid %d", os.Getpid())
	if _, err := memcachetest.Lookup(memcachetest.Options{}); err != nil {
		return fmt.Errorf("%w (make demo installs it)", err)
	}
	var servers []*memcachetest.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
		if len(servers) > 0 {
			say("stopped the memcached servers")
		}
	}()
	var list []string
	for weight := 1; weight <= 3; weight++ {
		s, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			return err
		}
		servers = append(servers, s)
		list = append(list, fmt.Sprintf("%s:%d", s.Addr, weight))
		say("memcached on %s (weight %d), pid %d", s.Addr, weight, s.Pid())
	}
	memcached := strings.Join(list, ",")

	dir, err := os.MkdirTemp("", "memkit-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	shop := filepath.Join(dir, "webapp")
	say("building the shop (%s); the first build can take a few minutes", shopPackage)
	start := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", shop, shopPackage)
	build.Stdout, build.Stderr = out, out
	build.Cancel = func() error { return killGroup(build) }
	if err := memcachetest.StartTied(build); err != nil {
		return fmt.Errorf("building the shop: %w", err)
	}
	if err := build.Wait(); err != nil {
		if ctx.Err() != nil {
			say("stopped while building the shop")
			return nil
		}
		return fmt.Errorf("building the shop: %w (run the demo from the examples module: make demo)", err)
	}
	say("built the shop in %s", time.Since(start).Round(100*time.Millisecond))

	if !portFree(addr) {
		busy := addr
		if addr, err = freeAddr(); err != nil {
			return err
		}
		say("%s is busy, using %s", busy, addr)
	}
	cmd := exec.Command(shop, "-addr", addr, "-memcached", memcached)
	// The shop says when it listens; the demo waits for that line rather
	// than dialing the port, which could connect a socket to itself (the
	// port may be in the ephemeral range) and take the port from the shop.
	listening := &lineWatch{out: out, needle: "shop open at http://", seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = listening, listening
	// A fixed session key for this run: sessions live as long as the servers.
	cmd.Env = append(os.Environ(), "SHOP_SESSION_KEY="+randomHex(32))
	if err := memcachetest.StartTied(cmd); err != nil {
		return fmt.Errorf("starting the shop: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
			return
		default:
		}
		say("stopping the shop")
		_ = cmd.Process.Signal(syscall.SIGTERM) // graceful shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	say("shop starting, pid %d", cmd.Process.Pid)
	if err := waitListening(ctx, listening.seen, exited); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Fprintf(out, `
  The memkit shop is open:   http://%[1]s/
  Cache and server stats:    http://%[1]s/debug/cache
  Try:  curl -i http://%[1]s/api/products/42        (X-Cache: miss, then hit)
        curl -c /tmp/jar -b /tmp/jar -d user=ada http://%[1]s/login
        curl -c /tmp/jar -b /tmp/jar http://%[1]s/api/me

  In another terminal, against the same three servers (from examples/):
        export MEMKIT_MEMCACHED=%[2]s
        go run ./mctop
        go run ./ticket
        go run ./cluster

  Ctrl-C (or closing this terminal) stops the shop and the memcached servers.

`, addr, memcached)
	select {
	case err := <-exited:
		exited <- err // for the deferred stop
		return fmt.Errorf("the shop exited: %v", err)
	case <-ctx.Done():
		fmt.Fprintln(out)
		say("%v: stopping", context.Cause(ctx))
		return nil
	}
}

// waitListening waits until the shop says it listens, exits, or ctx ends.
func waitListening(ctx context.Context, listening <-chan struct{}, exited chan error) error {
	select {
	case <-listening:
		return nil
	case err := <-exited:
		exited <- err
		return fmt.Errorf("the shop exited before it listened: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lineWatch copies what it is written to out and closes seen once a line
// containing needle was written. exec.Cmd calls Write from one goroutine.
type lineWatch struct {
	out    io.Writer
	needle string
	seen   chan struct{}
	line   []byte // the current line, until its newline
	done   bool   // seen is closed
}

func (w *lineWatch) Write(p []byte) (int, error) {
	if !w.done {
		for _, b := range p {
			if b != '\n' {
				w.line = append(w.line, b)
				continue
			}
			if strings.Contains(string(w.line), w.needle) {
				w.done = true
				close(w.seen)
				break
			}
			w.line = w.line[:0]
		}
	}
	return w.out.Write(p)
}

// portFree reports whether nothing listens on addr.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", errors.New("no free port on 127.0.0.1")
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
