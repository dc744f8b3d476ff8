package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
)

// The session benchmarks under an external load generator. Each
// implementation's HTTP server runs in a process of its own (this binary
// re-executed, see httpserver.go) and a load generator in another process
// (wrk) drives it, so that what the server process spends per request can
// be measured apart from what generating the load costs: the server's own
// CPU time, allocations and system calls, read from the server before and
// after each run. A bare handler, the same routes without sessions, is the
// baseline: what net/http costs by itself.

// Defaults of the external-load flags.
const (
	DefaultLoadgen      = "wrk"
	DefaultWrk          = "wrk"
	DefaultHTTPConns    = 32
	DefaultHTTPDuration = 2 * time.Second
)

// sessionsPerConn is how many sessions the bench makes per connection of
// the load generator. wrk's requests take them in turn, so a session is
// used again only after that many requests per connection.
const sessionsPerConn = 8

// wrkThreads is wrk's -t: one event loop drives every connection, which
// on the 2-core machine leaves the most CPU to the server and memcached.
const wrkThreads = 1

//go:embed session.lua
var wrkScript []byte

// httpImpls are the implementations of the external-load benchmarks,
// memkit first (the ratios are memkit's), the bare handler last.
var httpImpls = []string{"memkit", "scs", "gorilla", bareName}

// httpCase is one external-load benchmark: every request goes to path.
type httpCase struct {
	name string
	path string
}

// httpCases returns the external-load benchmarks: /rw reads the session's
// counter and writes it back incremented, /read only reads it.
func httpCases(loadgen string, conns int) []httpCase {
	var cases []httpCase
	for _, p := range []string{"/rw", "/read"} {
		cases = append(cases, httpCase{name: fmt.Sprintf("session-%s%s/%dc", loadgen, p, conns), path: p})
	}
	return cases
}

// serverProc is one implementation's server process and the sessions the
// bench made on it.
type serverProc struct {
	impl   string
	url    string // http://127.0.0.1:port
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	done   chan struct{} // closed when the process has been reaped
	tr     *http.Transport
	client *http.Client // the bench's own requests: sessions, stats, checks

	// cookies are the sessions' Cookie header values ("name=value").
	cookies []string
	// last is each session's counter as the bench last saw it (the Go
	// load generator checks every answer against it).
	last []int
	// cookieFile holds the cookies, one a line, for wrk.
	cookieFile string
}

// startServerProc starts a server process for sc and waits until it
// listens.
func startServerProc(ctx context.Context, sc serveConfig) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	// Under the race detector (the test binary re-executed by go test
	// -race) a process sleeps 1 s before it exits, unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), serveEnv+"="+string(js), "GORACE="+gorace)
	addrs := &addrWriter{addr: make(chan string, 1)}
	p := &serverProc{impl: sc.Impl, cmd: cmd, stderr: &tailBuffer{max: 4 << 10}, done: make(chan struct{})}
	cmd.Stdout = addrs
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := memcachetest.StartTied(cmd); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case addr := <-addrs.addr:
		p.url = "http://" + addr
	case <-p.done:
		return nil, fmt.Errorf("%s server exited: %s: %s", sc.Impl, cmd.ProcessState, p.stderr)
	case <-t.C:
		p.close()
		return nil, fmt.Errorf("%s server did not start within 60 s: %s", sc.Impl, p.stderr)
	case <-ctx.Done():
		p.close()
		return nil, ctx.Err()
	}
	p.tr = &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	p.client = &http.Client{Transport: p.tr, Timeout: 10 * time.Second}
	return p, nil
}

// close stops the server process: it closes its standard input, and kills
// it when it does not exit within 10 s.
func (p *serverProc) close() {
	if p.tr != nil {
		p.tr.CloseIdleConnections()
	}
	_ = p.stdin.Close()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// get requests path with cookie ("" for none) and returns the body; a
// status other than 200 is an error.
func (p *serverProc) get(ctx context.Context, path, cookie string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s %s: %s: %s", p.impl, path, resp.Status, bytes.TrimSpace(body))
	}
	return resp, body, nil
}

// makeSessions makes n sessions, each with one /rw request without a
// cookie (its counter then is 1), and keeps their cookies. The bare
// handler sets none: its requests carry made-up cookies of a similar
// size.
func (p *serverProc) makeSessions(ctx context.Context, n int) error {
	p.cookies, p.last = make([]string, n), make([]int, n)
	for i := range p.cookies {
		if p.impl == bareName {
			p.cookies[i] = fmt.Sprintf("bare_session=%0100d", i)
			continue
		}
		resp, body, err := p.get(ctx, "/rw", "")
		if err != nil {
			return err
		}
		if string(body) != "1" {
			return fmt.Errorf("%s: first request of a new session counted %q, want 1", p.impl, body)
		}
		for _, ck := range resp.Cookies() {
			if ck.Value != "" {
				p.cookies[i] = ck.Name + "=" + ck.Value
				break
			}
		}
		if p.cookies[i] == "" {
			return fmt.Errorf("%s: a new session set no cookie", p.impl)
		}
		p.last[i] = 1
	}
	return nil
}

// stats reads the server's counters.
func (p *serverProc) stats(ctx context.Context) (serverStats, error) {
	var st serverStats
	_, body, err := p.get(ctx, statsPath, "")
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(body, &st)
	return st, err
}

// check reads every session's counter (/read) and compares their sum with
// the /rw requests the server received: each of those must have added
// exactly one, but for those that failed (failed: the errors the load
// generator saw on /rw), whose client hung up (wrk does at its deadline),
// or that overlapped another request of their session (the handlers read
// the counter and set it: two requests that read the same value write
// the same value, in every implementation), which may or may not have.
// It returns an error when updates were lost or counted twice. It first waits, boundedly, until the server
// has finished the requests the load generator left behind.
func (p *serverProc) check(ctx context.Context, failed int) error {
	if p.impl == bareName {
		return nil
	}
	st, err := p.stats(ctx)
	for i := 0; err == nil && st.Busy > 0; i++ {
		if i == 500 {
			return fmt.Errorf("%s still serving %d requests after 5 s", p.impl, st.Busy)
		}
		time.Sleep(10 * time.Millisecond)
		st, err = p.stats(ctx)
	}
	if err != nil {
		return err
	}
	var sum int64
	for _, ck := range p.cookies {
		_, body, err := p.get(ctx, "/read", ck)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return fmt.Errorf("%s /read: %q: %w", p.impl, body, err)
		}
		sum += n
	}
	switch {
	case sum > st.RW:
		return fmt.Errorf("the sessions count %d increments, more than the %d /rw requests", sum, st.RW)
	case sum < st.RW-int64(failed)-st.Hangups-st.Overlaps:
		return fmt.Errorf("%d of %d session updates lost (the sessions count %d; %d requests failed, %d hung up, %d overlapped)",
			st.RW-int64(failed)-st.Hangups-st.Overlaps-sum, st.RW, sum, failed, st.Hangups, st.Overlaps)
	}
	return nil
}

// loadRun is what one run of the load generator measured.
type loadRun struct {
	requests int
	elapsed  time.Duration
	p50, p99 time.Duration
	errs     int
	firstErr error
	cpu      time.Duration // the load generator's CPU time; -1 if unknown
}

// loadGen drives a server process with HTTP requests.
type loadGen interface {
	// prepare readies p's sessions for the generator.
	prepare(p *serverProc) error
	// run sends requests for path to p for about d.
	run(ctx context.Context, p *serverProc, path string, d time.Duration) (loadRun, error)
	close()
}

// newLoadGen returns the load generator cfg names; an error when it
// cannot run (wrk not installed).
func newLoadGen(cfg config) (loadGen, error) {
	conns := cfg.httpConnections()
	switch cfg.loadgen {
	case "wrk":
		bin, err := exec.LookPath(cfg.wrk)
		if err != nil {
			return nil, fmt.Errorf("%w (make bench installs Debian's wrk; or apt-get install wrk, or -loadgen go)", err)
		}
		dir, err := os.MkdirTemp("", "memkit-bench-wrk-")
		if err != nil {
			return nil, err
		}
		script := filepath.Join(dir, "session.lua")
		if err := os.WriteFile(script, wrkScript, 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		return &wrkGen{bin: bin, dir: dir, script: script, conns: conns}, nil
	case "go":
		return &goGen{conns: conns, maxOps: cfg.maxOps}, nil
	}
	return nil, fmt.Errorf("unknown load generator %q", cfg.loadgen)
}

// wrkGen runs wrk (one thread, conns connections) with session.lua.
type wrkGen struct {
	bin, dir, script string
	conns            int
	files            int // cookie files written
}

func (g *wrkGen) prepare(p *serverProc) error {
	g.files++
	p.cookieFile = filepath.Join(g.dir, fmt.Sprintf("cookies-%d-%s", g.files, p.impl))
	return os.WriteFile(p.cookieFile, []byte(strings.Join(p.cookies, "\n")+"\n"), 0o644)
}

func (g *wrkGen) close() { os.RemoveAll(g.dir) }

// wrkLine starts the line session.lua prints when done.
const wrkLine = "memkit-bench-wrk "

// run runs wrk for d rounded up to whole seconds (wrk's unit).
func (g *wrkGen) run(ctx context.Context, p *serverProc, path string, d time.Duration) (loadRun, error) {
	secs := max(1, int(math.Ceil(d.Seconds())))
	cmd := exec.CommandContext(ctx, g.bin, "-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(max(g.conns, wrkThreads)),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", g.script, p.url+path,
		"--", p.cookieFile, strconv.Itoa(wrkThreads))
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := memcachetest.StartTied(cmd); err != nil {
		return loadRun{}, err
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return loadRun{}, ctx.Err()
		}
		return loadRun{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	r, err := parseWrk(out.String())
	if err != nil {
		return r, err
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// parseWrk reads the line session.lua's done prints.
func parseWrk(out string) (loadRun, error) {
	var r loadRun
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, wrkLine)
		if !ok {
			continue
		}
		var v [9]int64
		f := strings.Fields(rest)
		if len(f) != len(v) {
			break
		}
		for i := range v {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			v[i] = n
		}
		r.requests, r.elapsed = int(v[0]), time.Duration(v[1])*time.Microsecond
		connect, read, write, status, timeout := v[2], v[3], v[4], v[5], v[6]
		r.p50, r.p99 = time.Duration(v[7])*time.Microsecond, time.Duration(v[8])*time.Microsecond
		r.errs = int(connect + read + write + status + timeout)
		if r.errs > 0 {
			r.firstErr = fmt.Errorf("wrk: %d connect, %d read, %d write and %d timeout errors, %d responses not 2xx or 3xx",
				connect, read, write, timeout, status)
		}
		return r, nil
	}
	return r, fmt.Errorf("wrk printed no %q line: %s", strings.TrimSpace(wrkLine), out)
}

// goGen is a load generator in Go, in the bench process: conns
// goroutines, each with its own keep-alive connection and its own
// sessions, which it checks every answer of (a /rw counter goes up by
// exactly one, a /read counter stays). The tests use it, so that they
// need no wrk.
type goGen struct {
	conns, maxOps int
}

func (g *goGen) prepare(p *serverProc) error {
	if len(p.cookies) < g.conns {
		return fmt.Errorf("%d sessions for %d connections", len(p.cookies), g.conns)
	}
	return nil
}

func (g *goGen) close() {}

func (g *goGen) run(ctx context.Context, p *serverProc, path string, d time.Duration) (loadRun, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: g.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	perWorker := len(p.cookies) / g.conns
	bufs := make([]bytes.Buffer, g.conns)
	op := func(ctx context.Context, w, i int) error {
		j := w + g.conns*(i%perWorker) // worker w's sessions only
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Cookie", p.cookies[j])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b := &bufs[w]
		b.Reset()
		if _, err := b.ReadFrom(resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", path, resp.Status, bytes.TrimSpace(b.Bytes()))
		}
		if p.impl == bareName {
			return nil
		}
		n, err := strconv.Atoi(b.String())
		if err != nil {
			return err
		}
		want := p.last[j]
		if path == "/rw" {
			want++
		}
		p.last[j] = n
		if n != want {
			return fmt.Errorf("%s: session counter went from %d to %d", path, want, n)
		}
		return nil
	}
	cpu0, cpuOK := selfCPU()
	s := runOp(ctx, g.conns, 1, d, g.maxOps, op, nil)
	cpu1, _ := selfCPU()
	r := loadRun{requests: s.ops, elapsed: s.elapsed, p50: s.p50, p99: s.p99, errs: s.errs, firstErr: s.firstErr, cpu: -1}
	if cpuOK {
		r.cpu = cpu1 - cpu0
	}
	return r, ctx.Err()
}

// runHTTPCases runs the session benchmarks under external load and adds
// their results to rep. When the load generator cannot run (wrk is not
// installed), it notes so and skips them.
func runHTTPCases(ctx context.Context, cfg config, hcases []httpCase, e env, rep *report, logw io.Writer) error {
	gen, err := newLoadGen(cfg)
	if err != nil {
		note := fmt.Sprintf("session-%s benchmarks skipped: %v", cfg.loadgen, err)
		fmt.Fprintln(logw, "bench: "+note)
		rep.notes = append(rep.notes, note)
		return nil
	}
	defer gen.close()
	for _, hc := range hcases {
		fmt.Fprintf(logw, "%s ...\n", hc.name)
		cr, err := runHTTPCase(ctx, cfg, hc, e, gen, cfg.loadgen)
		if cr != nil {
			rep.cases = append(rep.cases, *cr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hc.name, err)
		}
	}
	return nil
}

// runHTTPCase runs one external-load benchmark: it starts a server
// process per implementation on the first three memcached servers, makes
// the sessions, warms each up, then drives them in turn, cfg.rounds times
// (A B C D, B C D A, ...), and finally checks that no session lost an
// update.
func runHTTPCase(ctx context.Context, cfg config, hc httpCase, e env, gen loadGen, loadgen string) (*caseResult, error) {
	type live struct {
		p       *serverProc
		samples []sample
		calls   []float64
		failed  int // errors the load generator saw on /rw
	}
	if len(e.servers) < 3 {
		return nil, fmt.Errorf("needs 3 servers, %d started", len(e.servers))
	}
	var lives []*live
	defer func() {
		for _, l := range lives {
			l.p.close()
		}
	}()
	conns := cfg.httpConnections()
	for _, name := range httpImpls {
		if cfg.impl != nil && !cfg.impl.MatchString(name) {
			continue
		}
		sc := serveConfig{Impl: name, Servers: e.servers[:3], Conns: cfg.conns, Clients: conns}
		if cfg.serverProfile != "" {
			sc.CPUProfile = fmt.Sprintf("%s.%s.%s", cfg.serverProfile, strings.ReplaceAll(hc.name, "/", "-"), name)
		}
		p, err := startServerProc(ctx, sc)
		if err != nil {
			return nil, err
		}
		lives = append(lives, &live{p: p})
		if err := p.makeSessions(ctx, conns*sessionsPerConn); err != nil {
			return nil, err
		}
		if err := gen.prepare(p); err != nil {
			return nil, err
		}
	}
	if len(lives) == 0 {
		return nil, nil // -impl matched none of them
	}
	for _, l := range lives {
		r, err := gen.run(ctx, l.p, hc.path, cfg.warmup)
		if err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", l.p.impl, err)
		}
		if hc.path == "/rw" {
			l.failed += r.errs
		}
	}
	for round := 0; round < cfg.rounds && ctx.Err() == nil; round++ {
		for k := range lives {
			l := lives[(round+k)%len(lives)]
			s, calls, err := measureLoad(ctx, l.p, gen, hc.path, cfg.httpDur(), e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.p.impl, err)
			}
			l.samples = append(l.samples, s)
			if calls >= 0 {
				l.calls = append(l.calls, calls)
			}
			if hc.path == "/rw" {
				l.failed += s.errs
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cr := &caseResult{name: hc.name, ext: loadgen}
	for _, l := range lives {
		r := summarize(l.samples, l.calls)
		if err := l.p.check(ctx, l.failed); err != nil {
			r.errs++
			if r.firstErr == nil {
				r.firstErr = err
			}
		}
		cr.impls = append(cr.impls, l.p.impl)
		cr.results = append(cr.results, r)
		cr.samples = append(cr.samples, l.samples)
	}
	return cr, nil
}

// measureLoad runs the load generator once against p and returns the
// sample (the server's CPU time, allocations and system calls, the
// memcached servers' CPU time, the generator's CPU time) and the
// memcached commands per request (-1 when not counted).
func measureLoad(ctx context.Context, p *serverProc, gen loadGen, path string, d time.Duration, e env) (sample, float64, error) {
	st0, err := p.stats(ctx)
	if err != nil {
		return sample{}, 0, err
	}
	var calls0 uint64
	if e.calls != nil {
		if calls0, err = e.calls(ctx); err != nil {
			return sample{}, 0, err
		}
	}
	var srv0 time.Duration
	cpuOK := e.probe != nil
	if cpuOK {
		_, srv0, cpuOK = e.probe()
	}
	r, err := gen.run(ctx, p, path, d)
	if err != nil {
		return sample{}, 0, err
	}
	var srv1 time.Duration
	if cpuOK {
		_, srv1, cpuOK = e.probe()
	}
	calls := -1.0
	if e.calls != nil {
		calls1, err := e.calls(ctx)
		if err != nil {
			return sample{}, 0, err
		}
		if r.requests > 0 {
			calls = float64(calls1-calls0) / float64(r.requests)
		}
	}
	st1, err := p.stats(ctx)
	if err != nil {
		return sample{}, 0, err
	}
	s := sample{ops: r.requests, errs: r.errs, firstErr: r.firstErr, elapsed: r.elapsed, p50: r.p50, p99: r.p99,
		mallocs: uint64(st1.Mallocs - st0.Mallocs), reads: -1, writes: -1, cpu: -1, srvCPU: -1, genCPU: r.cpu}
	if st0.CPU >= 0 && st1.CPU >= 0 {
		s.cpu = time.Duration(st1.CPU - st0.CPU)
	}
	if st0.Reads >= 0 && st1.Reads >= 0 {
		s.reads, s.writes = st1.Reads-st0.Reads, st1.Writes-st0.Writes
	}
	if cpuOK {
		s.srvCPU = srv1 - srv0
	}
	return s, calls, nil
}

// ensureWrk installs Debian's wrk package with apt-get (through sudo when
// not root), as scripts/install-deps.sh installs the tests' tools, when
// bin is the default "wrk" and none is on PATH. It only reports what went
// wrong: run then notes that the wrk benchmarks were skipped.
func ensureWrk(bin string, logw io.Writer) {
	if _, err := exec.LookPath(bin); err == nil || bin != DefaultWrk {
		return
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		fmt.Fprintln(logw, "bench: wrk not found and no apt-get to install it with: install wrk, or run with -loadgen go")
		return
	}
	var prefix []string
	if os.Geteuid() != 0 {
		prefix = []string{"sudo"}
	}
	fmt.Fprintln(logw, "bench: installing wrk with apt-get")
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"}} {
		args = append(prefix, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = logw, logw
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(logw, "bench: %s: %v\n", strings.Join(args, " "), err)
			return
		}
	}
}

// addrWriter takes a server process's standard output and passes on the
// address of its "listening ADDR" line.
type addrWriter struct {
	mu   sync.Mutex // protects buf and sent
	buf  []byte
	sent bool
	addr chan string // gets the address, once
}

func (a *addrWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sent {
		return len(p), nil
	}
	a.buf = append(a.buf, p...)
	for {
		line, rest, ok := bytes.Cut(a.buf, []byte("\n"))
		if !ok {
			break
		}
		if addr, ok := strings.CutPrefix(string(line), "listening "); ok {
			a.sent, a.buf = true, nil
			a.addr <- addr
			break
		}
		a.buf = rest
	}
	if len(a.buf) > 64<<10 {
		a.buf = nil
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // protects buf
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
