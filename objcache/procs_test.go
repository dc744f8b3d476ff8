package objcache_test

// Cross-process proofs run real OS processes: the test binary itself,
// started again as workers that run TestHelperProcess and share the
// test's memcached. The parent gives orders on a worker's stdin, one
// line each; a worker reports on stdout, one fact per line prefixed with
// "@ " (the rest of its output is the testing package's). Workers and
// their output are bounded by procDeadline.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

const (
	helperJob   = "OBJCACHE_HELPER"       // the worker's job; unset in a normal run
	helperAddr  = "OBJCACHE_HELPER_ADDR"  // the memcached to use
	helperProto = "OBJCACHE_HELPER_PROTO" // "meta" or "text"
	helperID    = "OBJCACHE_HELPER_ID"    // the worker's number, from 0

	procDeadline = 30 * time.Second // a bound for a failing run, not a timing assertion
)

// worker is a worker process seen from the parent.
type worker struct {
	t     *testing.T
	id    int
	in    io.WriteCloser
	lines chan string // its reports, without "@ "; closed when it exits
}

// startWorkers starts n workers doing job against the memcached at addr.
// They are stopped (their stdin closed, then waited for) when the test
// ends.
func startWorkers(t *testing.T, n int, job, addr string, proto memclient.Protocol) []*worker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procDeadline)
	t.Cleanup(cancel)
	ws := make([]*worker, n)
	for i := range ws {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperJob+"="+job, helperAddr+"="+addr,
			helperProto+"="+proto.String(), fmt.Sprintf("%s=%d", helperID, i))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		w := &worker{t: t, id: i, in: in, lines: make(chan string, 1024)}
		var read sync.WaitGroup
		read.Go(func() {
			defer close(w.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), "@ "); ok {
					w.lines <- line
				}
			}
		})
		t.Cleanup(func() {
			_ = in.Close()
			read.Wait()
			if err := cmd.Wait(); err != nil && !t.Failed() {
				t.Errorf("worker %d: %v\n%s", i, err, stderr.String())
			}
		})
		ws[i] = w
	}
	return ws
}

// tell sends an order to every worker.
func tell(t *testing.T, ws []*worker, order string) {
	t.Helper()
	for _, w := range ws {
		_, err := fmt.Fprintln(w.in, order)
		require.NoError(t, err, "worker %d", w.id)
	}
}

// until collects a worker's reports up to and including the first one
// equal to last.
func (w *worker) until(last string) []string {
	w.t.Helper()
	var got []string
	timeout := time.After(procDeadline)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("worker %d exited before %q; it said %q", w.id, last, got)
			}
			if line == last {
				return got
			}
			got = append(got, line)
		case <-timeout:
			w.t.Fatalf("worker %d: no %q within %v; it said %q", w.id, last, procDeadline, got)
		}
	}
}

// helper is what a worker process works with.
type helper struct {
	id     int
	client *memclient.Client
	in     *bufio.Scanner
	mu     sync.Mutex // serializes reports
}

func (h *helper) cache(opts objcache.Options) *objcache.Cache {
	c, err := objcache.New(h.client, opts)
	if err != nil {
		panic(err)
	}
	return c
}

// report writes one fact for the parent.
func (h *helper) report(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Printf("@ "+format+"\n", args...)
}

// await reads the next order and panics unless it is want.
func (h *helper) await(want string) {
	if !h.in.Scan() {
		panic(fmt.Sprintf("worker %d: stdin closed before %q", h.id, want))
	}
	if got := h.in.Text(); got != want {
		panic(fmt.Sprintf("worker %d: got order %q, want %q", h.id, got, want))
	}
}

// helperJobs are the jobs a worker process can do.
var helperJobs = map[string]func(h *helper){}

// TestHelperProcess is not a test: it is the body of the worker processes
// that cross-process tests start, and does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	job := os.Getenv(helperJob)
	if job == "" {
		t.Skip("the body of the worker processes of cross-process tests")
	}
	proto := memclient.ProtocolMeta
	if os.Getenv(helperProto) == memclient.ProtocolText.String() {
		proto = memclient.ProtocolText
	}
	cl, err := memclient.NewFromConfig(memclient.Config{
		Servers:  []memclient.Server{{Addr: os.Getenv(helperAddr)}},
		Protocol: proto,
	})
	require.NoError(t, err)
	defer cl.Close()
	var id int
	_, _ = fmt.Sscan(os.Getenv(helperID), &id)
	run, ok := helperJobs[job]
	require.True(t, ok, "no job %q", job)
	run(&helper{id: id, client: cl, in: bufio.NewScanner(os.Stdin)})
}
