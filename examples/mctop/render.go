package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// row is one line of the table.
type row struct {
	name, state                string
	down                       bool   // no stats: only name, state and why are shown
	why                        string // for a server that is down
	rtt                        time.Duration
	pinged                     bool
	items, bytes, limit, conns uint64
	gets, sets, hits, misses   float64 // per second over the interval
	allHits, allMisses         uint64  // since the server started
	evictions                  uint64  // since the server started
	evictRate                  float64
}

// column is one column of the table. Columns are dropped, the least
// needed (highest drop) first, until the table fits the width.
type column struct {
	head  string
	width int
	drop  int // 0: never dropped
	left  bool
	cell  func(r row) string
}

var columns = []column{
	{head: "SERVER/WEIGHT", drop: 0, left: true, cell: func(r row) string { return r.name }},
	{head: "STATE", width: 8, drop: 0, left: true, cell: func(r row) string { return r.state }},
	{head: "RTT", width: 8, drop: 1, cell: func(r row) string {
		if !r.pinged {
			return "-"
		}
		return fmtRTT(r.rtt)
	}},
	{head: "GET/s", width: 9, drop: 2, cell: func(r row) string { return fmtRate(r.gets) }},
	{head: "HIT%", width: 6, drop: 3, cell: func(r row) string { return ratio(r.hits, r.misses) }},
	{head: "SET/s", width: 9, drop: 4, cell: func(r row) string { return fmtRate(r.sets) }},
	{head: "MEMORY", width: 13, drop: 5, cell: func(r row) string { return mem(r.bytes, r.limit) }},
	{head: "ITEMS", width: 9, drop: 6, cell: func(r row) string { return strconv.FormatUint(r.items, 10) }},
	{head: "EVICT/s", width: 7, drop: 7, cell: func(r row) string { return fmtRate(r.evictRate) }},
	{head: "CONNS", width: 6, drop: 8, cell: func(r row) string { return strconv.FormatUint(r.conns, 10) }},
	{head: "HIT%ALL", width: 7, drop: 9, cell: func(r row) string { return ratio(float64(r.allHits), float64(r.allMisses)) }},
	{head: "EVICTIONS", width: 9, drop: 10, cell: func(r row) string { return strconv.FormatUint(r.evictions, 10) }},
}

// minNameWidth is as narrow as the server column gets before lines are
// cut.
const minNameWidth = 12

// rows turns two samples into the table's rows, the total last.
func rows(prev, cur sample) []row {
	dt := cur.at.Sub(prev.at).Seconds()
	var out []row
	total := row{name: "total"}
	up := 0
	var maxRTT time.Duration
	for _, ss := range cur.status {
		r := row{name: ss.Addr + "/" + strconv.Itoa(max(ss.Weight, 1)), state: "up"}
		if p, ok := cur.pings[ss.Addr]; ok && p.Err == nil {
			r.rtt, r.pinged = p.RTT, true
			maxRTT = max(maxRTT, p.RTT)
		} else if ok {
			r.why = p.Err.Error()
		}
		m, ok := cur.stats[ss.Addr]
		switch {
		case !ok && !ss.Up:
			r.state, r.down = "DOWN", true
		case !ok:
			r.state, r.down = "ERROR", true
		}
		if r.why == "" && ss.LastError != "" && r.down {
			r.why = ss.LastError
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
		out = append(out, r)
	}
	total.state = fmt.Sprintf("%d/%d up", up, len(cur.status))
	total.rtt, total.pinged = maxRTT, maxRTT > 0 // the slowest server's
	return append(out, total)
}

// rate is (b-a)/dt, or 0 when the counter went backwards (a restart).
func rate(a, b uint64, dt float64) float64 {
	if b < a || dt <= 0 {
		return 0
	}
	return float64(b-a) / dt
}

// render returns the frame for two samples, each line at most width
// runes wide (0: no limit).
func render(prev, cur sample, width int) []string {
	rs := rows(prev, cur)
	cols := fit(rs, width)
	dt := cur.at.Sub(prev.at).Seconds()
	lines := []string{fmt.Sprintf("mctop - %s - %d servers - every %.1fs", cur.at.Format("15:04:05"), len(cur.status), dt)}
	if hidden := len(columns) - len(cols); hidden > 0 {
		lines[0] += fmt.Sprintf(" - %d more columns if wider", hidden)
	}
	lines = append(lines, "", tableLine(cols, func(c column) string { return c.head }))
	for _, r := range rs {
		if r.down {
			l := pad(r.name, cols[0].width, true) + " " + pad(r.state, cols[1].width, true)
			if r.why != "" {
				l += " " + r.why
			}
			lines = append(lines, l)
			continue
		}
		lines = append(lines, tableLine(cols, func(c column) string { return c.cell(r) }))
	}
	// The client's view: failures seen by this process.
	var notes []string
	for _, ss := range cur.status {
		if ss.Errors > 0 || ss.Timeouts > 0 {
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
		lines = append(append(lines, ""), notes...)
	}
	if width > 0 {
		for i, l := range lines {
			lines[i] = cut(l, width)
		}
	}
	return lines
}

// fit returns the columns that fit width (all with 0), the server column
// as wide as the longest name, or narrower when nothing else can go.
func fit(rs []row, width int) []column {
	cols := append([]column(nil), columns...)
	name := len(columns[0].head)
	for _, r := range rs {
		name = max(name, utf8.RuneCountInString(r.name))
	}
	cols[0].width = name
	total := func() int {
		n := len(cols) - 1 // the spaces between columns
		for _, c := range cols {
			n += c.width
		}
		return n
	}
	for width > 0 && total() > width {
		worst := 0
		for i, c := range cols {
			if c.drop > cols[worst].drop {
				worst = i
			}
		}
		if cols[worst].drop == 0 {
			break // only what is never dropped is left
		}
		cols = append(cols[:worst], cols[worst+1:]...)
	}
	if width > 0 && total() > width {
		cols[0].width = max(minNameWidth, cols[0].width-(total()-width))
	}
	return cols
}

func tableLine(cols []column, text func(column) string) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = pad(text(c), c.width, c.left)
	}
	return strings.TrimRight(strings.Join(cells, " "), " ")
}

// pad fits s in width runes: cut with an ellipsis if longer, padded on the
// right (left) or left otherwise.
func pad(s string, width int, left bool) string {
	n := utf8.RuneCountInString(s)
	if n > width {
		return cut(s, width)
	}
	if left {
		return s + strings.Repeat(" ", width-n)
	}
	return strings.Repeat(" ", width-n) + s
}

// cut shortens s to width runes, the last one an ellipsis if it was cut.
func cut(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// ratio formats hits/(hits+misses) as a percentage, "-" with no gets.
func ratio(hits, misses float64) string {
	if hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*hits/(hits+misses))
}

// fmtRate formats a rate per second: 0.5, 12.0, 950.0, 12.3k.
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e5:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtRTT formats a round trip: 85µs, 1.2ms, 1.5s.
func fmtRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
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
