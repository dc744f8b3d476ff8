package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The dashboard's view: debugInfo turned into tiles, charts (SVG paths
// drawn here, on the server) and server cards, for templates/debug.html.

// dashboard is what the "debug" and "live" templates show.
type dashboard struct {
	Info           debugInfo
	Updated        string
	Tiles          []tile
	Charts         []chartView
	Servers        []serverCard
	Counters       []counter
	Memcached      *memcachedTotals
	MemcachedRatio string
}

// tile is one headline number.
type tile struct {
	ID, Label, Value, Note string
	Bad                    bool
}

// counter is one of the object cache's counters.
type counter struct {
	ID, Name, Help string
	Value          uint64
}

// serverCard is one server as the dashboard shows it.
type serverCard struct {
	serverInfo
	Class     string // its colour in the charts
	Memory    string
	Ratio     string
	DownSince string
}

// chartView is one chart: lines over the window, newest on the right.
type chartView struct {
	ID, Title, Note string
	W               int    // the SVG's width: one unit a second
	YMax            string // the value of the top edge
	Window          string // how far back the left edge is
	Lines           []lineView
}

// lineView is one line of a chart and its legend entry.
type lineView struct {
	Name, Class string
	D           string // SVG path data
	Points      int    // how many values D draws
	Now         string // the latest value
}

func newDashboard(info debugInfo) dashboard {
	d := dashboard{Info: info, Updated: info.Time.Local().Format(time.TimeOnly), Memcached: info.Memcached}
	if info.Memcached != nil {
		d.MemcachedRatio = fmtRatio(info.Memcached.HitRatio)
	}
	s, c := info.Series, info.Cache
	class := map[string]string{}
	for i, ss := range s.Servers {
		class[ss.Addr] = "c" + strconv.Itoa(i%6)
	}

	// Tiles: the last ten seconds, and totals.
	last := s.Last10s
	if info.Mode == "memcached" {
		d.Tiles = append(d.Tiles, tile{ID: "tile-ops", Label: "memcached ops/s", Value: fmtCount(last.Ops),
			Note: "last 10 s · failures " + fmtCount(last.Failures) + "/s", Bad: last.Failures > 0})
	}
	d.Tiles = append(d.Tiles, tile{ID: "tile-hit", Label: "hit ratio (application)", Value: fmtRatio(last.HitRatio),
		Note: "last 10 s · since start " + fmtRatio(c.HitRatio)})
	if info.Mode == "memcached" {
		d.Tiles = append(d.Tiles, tile{ID: "tile-latency", Label: "latency p50 / p99", Value: fmtSecondsPtr(last.P50) + " / " + fmtSecondsPtr(last.P99),
			Note: "last 10 s, all servers"})
		up, down := 0, []string{}
		for _, si := range info.Servers {
			if si.State == "up" {
				up++
			} else {
				down = append(down, si.Addr+" "+si.State)
			}
		}
		note := "all answering"
		if len(down) > 0 {
			note = strings.Join(down, ", ")
		}
		d.Tiles = append(d.Tiles, tile{ID: "tile-servers", Label: "servers up", Value: fmt.Sprintf("%d of %d", up, len(info.Servers)),
			Note: note, Bad: up < len(info.Servers)})
	}
	d.Tiles = append(d.Tiles, tile{ID: "tile-db", Label: "database queries", Value: strconv.FormatInt(info.DBQueries, 10),
		Note: fmt.Sprintf("loads %d · not found %d · load errors %d", c.Loads, c.NotFound, c.LoadErrors), Bad: c.LoadErrors > 0})

	// Charts.
	n := s.WindowSeconds
	window := (time.Duration(n) * time.Second).String()
	if n%60 == 0 {
		window = strconv.Itoa(n/60) + " min"
	}
	chart := func(id, title, note string, lines []lineView, ymax string) chartView {
		return chartView{ID: id, Title: title, Note: note, W: max(n-1, 1), YMax: ymax, Window: window, Lines: lines}
	}
	off := n - len(s.Ops) // seconds between the window's start and the first value
	if info.Mode == "memcached" {
		top := niceCeil(max(maxOf(s.Ops), 1))
		d.Charts = append(d.Charts, chart("chart-ops", "Operations per second", "every memcached operation of this process",
			[]lineView{
				newLine("all", "all", s.Ops, off, top, fmtCount),
				newLine("failed", "bad", s.Failures, off, top, fmtCount),
			}, fmtCount(top)))
	}
	d.Charts = append(d.Charts, chart("chart-hit", "Hit ratio", "objcache hits / (hits + misses): the application's",
		[]lineView{newLine("application", "all", s.HitRatio, off, 1, fmtPercent)}, "100 %"))
	if info.Mode == "memcached" {
		var p50, p99, share []lineView
		top50, top99 := 0.0, 0.0
		for _, ss := range s.Servers {
			top50, top99 = max(top50, maxOf(ss.P50)), max(top99, maxOf(ss.P99))
		}
		top50, top99 = niceCeil(max(top50, 1e-4)), niceCeil(max(top99, 1e-4))
		weights := map[string]int{}
		total := 0
		for _, si := range info.Servers {
			if !si.Gutter {
				weights[si.Addr] = si.Weight
				total += si.Weight
			}
		}
		for _, ss := range s.Servers {
			cl := class[ss.Addr]
			p50 = append(p50, newLine(ss.Addr, cl, ss.P50, off, top50, fmtSeconds))
			p99 = append(p99, newLine(ss.Addr, cl, ss.P99, off, top99, fmtSeconds))
			name := ss.Addr
			if w, ok := weights[ss.Addr]; ok && total > 0 {
				name += fmt.Sprintf(" (weight %d: %s)", w, fmtPercent(float64(w)/float64(total)))
			}
			share = append(share, newLine(name, cl, ss.KeyShare, off, 1, fmtPercent))
		}
		d.Charts = append(d.Charts,
			chart("chart-p50", "Latency p50", "per server, as the client measures it", p50, fmtSeconds(top50)),
			chart("chart-p99", "Latency p99", "per server, as the client measures it", p99, fmtSeconds(top99)),
			chart("chart-share", "Key share", "each server's share of the keys sent, against its weight's", share, "100 %"))
	}

	for _, si := range info.Servers {
		card := serverCard{serverInfo: si, Class: class[si.Addr], Ratio: fmtRatio(si.HitRatio)}
		if card.Class == "" {
			card.Class = "c" + strconv.Itoa(len(class)%6)
		}
		if si.State != "no stats" {
			card.Memory = size(si.Bytes) + " of " + size(si.LimitBytes)
		}
		if si.DownSince != nil {
			card.DownSince = si.DownSince.Local().Format(time.TimeOnly)
		}
		d.Servers = append(d.Servers, card)
	}

	d.Counters = []counter{
		{"hits", "hits", "values served fresh from memcached", c.Hits},
		{"misses", "misses", "lookups that found no usable value", c.Misses},
		{"loads", "loads", "values loaded from the database", c.Loads},
		{"not-found", "not found", "loads that found nothing (a missing product): not an error", c.NotFound},
		{"load-errors", "load errors", "loads that failed", c.LoadErrors},
	}
	if info.Mode == "memcached" {
		d.Counters = append(d.Counters, []counter{
			{"negative-hits", "negative hits", "cached not-founds served", c.NegativeHits},
			{"stale-served", "stale served", "out-of-date values served while another caller reloads", c.StaleServed},
			{"failsafe-served", "fail-safe served", "expired values served because their reload failed", c.FailSafeServed},
			{"lease-waits", "lease waits", "lookups that waited for another process's load", c.LeaseWaits},
			{"coalesced", "coalesced", "lookups that shared another goroutine's", c.Coalesced},
			{"early-refreshes", "early refreshes", "values reloaded before they expired", c.Refreshes},
			{"batch-loads", "batch loads", "calls of a batch loader", c.BatchLoads},
			{"batch-keys", "batch keys", "keys asked of batch loaders", c.BatchKeys},
			{"background-loads", "background loads", "loads that went on after their caller gave up", c.BackgroundLoads},
			{"decode-errors", "decode errors", "cached values that did not decode", c.DecodeErrors},
			{"memcached-errors", "memcached errors", "memcached failures the loaders worked around", c.Errors},
		}...)
	}
	return d
}

// newLine draws vals (one a second; NaN: none) from x = off on, scaled
// so that top is the chart's top edge. A lone value becomes a dot.
func newLine(name, class string, vals points, off int, top float64, format func(float64) string) lineView {
	var b strings.Builder
	run, n := 0, 0
	for k, v := range vals {
		if math.IsNaN(v) {
			if run == 1 {
				b.WriteString("h1")
			}
			run = 0
			continue
		}
		y := 100 - 100*min(max(v/top, 0), 1)
		cmd := 'L'
		if run == 0 {
			cmd = 'M'
		}
		fmt.Fprintf(&b, "%c%d %s", cmd, off+k, strconv.FormatFloat(y, 'f', 1, 64))
		run++
		n++
	}
	if run == 1 {
		b.WriteString("h1")
	}
	now := "–"
	if len(vals) > 0 && !math.IsNaN(vals[len(vals)-1]) {
		now = format(vals[len(vals)-1])
	}
	return lineView{Name: name, Class: class, D: b.String(), Points: n, Now: now}
}

func maxOf(vals points) float64 {
	m := 0.0
	for _, v := range vals {
		if !math.IsNaN(v) {
			m = max(m, v)
		}
	}
	return m
}

// niceCeil rounds v > 0 up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// fmtCount formats a count or rate for people: 7, 12.5, 950, 1.2k, 3.4M.
func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v >= 10 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// fmtPercent formats a ratio (0 to 1) as a percentage.
func fmtPercent(r float64) string { return strconv.FormatFloat(100*r, 'f', 1, 64) + " %" }

func fmtRatio(r *float64) string {
	if r == nil {
		return "–"
	}
	return fmtPercent(*r)
}

// fmtSeconds formats a latency given in seconds: 85 µs, 1.23 ms, 42 ms,
// 1.5 s.
func fmtSeconds(s float64) string {
	switch {
	case s < 1e-3:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + " µs"
	case s < 1e-2:
		return trimZeros(strconv.FormatFloat(s*1e3, 'f', 2, 64)) + " ms"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'f', 0, 64) + " ms"
	}
	return trimZeros(strconv.FormatFloat(s, 'f', 2, 64)) + " s"
}

// trimZeros drops the trailing zeros of a decimal: 2.50 is 2.5, 1.00 is 1.
func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func fmtSecondsPtr(s *float64) string {
	if s == nil {
		return "–"
	}
	return fmtSeconds(*s)
}
