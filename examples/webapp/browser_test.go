package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// chromium returns the path of Debian's Chromium, or skips the test with
// the install hint (fails it when CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH: ./scripts/install-deps.sh installs it (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowserContext starts a headless Chromium for the test. It runs as
// root here, hence no sandbox; the background-networking flags keep it
// from dialing out (this machine refuses those connections).
func newBrowserContext(t *testing.T, ctx context.Context, width, height int) context.Context {
	t.Helper()
	var out syncBuffer
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", false), // so that an overflow shows
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(&out),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser to exit
		if t.Failed() {
			t.Logf("chromium's output:\n%s", out.String())
		}
	})
	return bctx
}

// syncBuffer is a strings.Builder safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// traffic sends shop requests to base until ctx ends, at most one every
// pace: products (some missing), catalogue pages, a session, and now and
// then a product edit, which invalidates every cached product.
func traffic(ctx context.Context, base string, seed uint64, pace time.Duration, sent *atomic.Int64) {
	c := &http.Client{Timeout: 5 * time.Second}
	rnd := rand.New(rand.NewPCG(seed, 14))
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; i < 100_000; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		method, path, body := "GET", "", ""
		switch r := rnd.IntN(100); {
		case r < 60:
			path = fmt.Sprintf("/api/products/%d", 1+rnd.IntN(seedProducts+20))
		case r < 85:
			path = fmt.Sprintf("/?page=%d", 1+rnd.IntN(seedProducts/pageSize))
		case r < 99:
			path = "/api/me"
		default:
			method, path = "POST", fmt.Sprintf("/admin/products/%d", 1+rnd.IntN(seedProducts))
			body = fmt.Sprintf(`{"price_cents": %d}`, 100+rnd.IntN(10000))
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sent.Add(1)
	}
}

// pageState is what the test reads off the dashboard.
type pageState struct {
	Status      string         `json:"status"`
	Hits        string         `json:"hits"`
	Ops         string         `json:"ops"`
	Points      map[string]int `json:"points"` // chart id -> points of its first line
	ServerLines int            `json:"serverLines"`
	ScrollWidth int            `json:"scrollWidth"`
	ClientWidth int            `json:"clientWidth"`
	Width       int            `json:"width"`
}

// readPage reads the dashboard: its live status, two of its numbers, how
// many points each chart's lines draw (the M and L commands of the SVG
// paths) and whether the page is wider than the window.
const readPage = `(() => {
	const text = sel => { const e = document.querySelector(sel); return e ? e.textContent.trim() : ""; };
	const points = {};
	let serverLines = 0;
	for (const fig of document.querySelectorAll("figure.chart")) {
		let best = 0;
		for (const p of fig.querySelectorAll("path.line")) {
			const n = ((p.getAttribute("d") || "").match(/[ML]/g) || []).length;
			best = Math.max(best, n);
			if (fig.id === "chart-p99" && n > 0) serverLines++;
		}
		points[fig.id] = best;
	}
	const de = document.documentElement;
	return {
		status: text("#live-status"), hits: text("#counter-hits .n"), ops: text("#tile-ops .v"),
		points, serverLines, scrollWidth: Math.max(de.scrollWidth, document.body.scrollWidth),
		clientWidth: de.clientWidth, width: window.innerWidth,
	};
})()`

// TestDashboardInBrowser loads /debug/cache in headless Chromium while
// shop traffic runs against three real memcached servers: the charts draw
// points, the numbers change between two reads without a reload, the
// page never scrolls sideways at 1280 px nor at a phone's 390 px, and no
// JavaScript error or failed request shows in the console.
func TestDashboardInBrowser(t *testing.T) {
	leakcheck.Check(t)
	chromium(t) // skip early, before starting servers
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	s := startShop(t, memclient.Config{Servers: []memclient.Server{
		{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}, {Addr: srvs[2].Addr, Weight: 3},
	}})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := range 2 {
		wg.Go(func() { traffic(trafficCtx, s.srv.URL, uint64(w), 2*time.Millisecond, &sent) })
	}
	defer func() {
		stopTraffic()
		wg.Wait()
	}()

	bctx := newBrowserContext(t, ctx, 1280, 900)
	consoleCtx, stopConsole := context.WithCancel(bctx)
	defer stopConsole()
	console := chromedp.Console(consoleCtx) // subscribes now, before the page loads
	var problems []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range console {
			if err != nil {
				return // stopConsole
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == chromedp.ConsoleWarning {
				problems = append(problems, m.String()+" at "+m.URL)
			}
		}
	}()

	read := func() pageState {
		t.Helper()
		st, err := chromedp.Run(bctx, chromedp.Evaluate[pageState](readPage))
		require.NoError(t, err)
		return st
	}
	// waitUntil polls the page (at most every 100 ms) until ok says so.
	waitUntil := func(what string, ok func(pageState) bool) pageState {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			st := read()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 45 s; the page shows %+v", what, st)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %v", what, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(s.srv.URL+"/debug/cache")))
	first := waitUntil("the charts draw a few seconds of traffic", func(st pageState) bool {
		for _, id := range []string{"chart-ops", "chart-hit", "chart-p50", "chart-p99", "chart-share"} {
			if st.Points[id] < 3 {
				return false
			}
		}
		return st.ServerLines == 3 && strings.HasPrefix(st.Status, "Live: updated")
	})
	t.Logf("after %d requests: %+v", sent.Load(), first)
	second := waitUntil("the numbers change without a reload", func(st pageState) bool {
		return st.Hits != first.Hits && st.Status != first.Status
	})
	assert.NotEqual(t, first.Hits, second.Hits)
	assert.NotEmpty(t, second.Ops)
	assert.LessOrEqual(t, second.ScrollWidth, second.ClientWidth, "no horizontal scroll at 1280 px")
	screenshot(t, bctx, "dashboard-1280.png")

	// A phone.
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))))
	phone := waitUntil("a live update at 390 px", func(st pageState) bool {
		return st.Width == 390 && st.Status != second.Status
	})
	assert.LessOrEqual(t, phone.ScrollWidth, phone.ClientWidth, "no horizontal scroll at 390 px")
	assert.GreaterOrEqual(t, phone.Points["chart-ops"], 3)
	screenshot(t, bctx, "dashboard-390.png")

	stopConsole()
	<-consoleDone
	assert.Empty(t, problems, "the console shows no error")
}

// screenshot saves the page as name under $MEMKIT_SCREENSHOTS, when set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("MEMKIT_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}
