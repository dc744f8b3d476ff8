package main

import (
	"fmt"
	"io"
	"regexp"
	"text/tabwriter"
	"time"
)

// serverCPUPerOp is the server process's CPU time per request of a sample
// of an external-load benchmark, in nanoseconds (-1 if unknown).
func serverCPUPerOp(s sample) float64 { return s.cpuPerOp(s.cpu) }

// aboveBare is the median over rounds, with its interval, of name's
// server CPU per request minus the bare handler's in the same round, in
// nanoseconds; ok is false when either did not run or was not measured.
func (cr caseResult) aboveBare(name string) (interval, bool) {
	i, b := cr.index(name), cr.index(bareName)
	if i < 0 || b < 0 || i >= len(cr.samples) || b >= len(cr.samples) {
		return interval{}, false
	}
	var d []float64
	for r := 0; r < len(cr.samples[i]) && r < len(cr.samples[b]); r++ {
		v, base := serverCPUPerOp(cr.samples[i][r]), serverCPUPerOp(cr.samples[b][r])
		if v >= 0 && base >= 0 {
			d = append(d, v-base)
		}
	}
	if len(d) == 0 {
		return interval{}, false
	}
	return medianInterval(d), true
}

// aboveBareRatio is the median over rounds, with its interval, of a's
// server CPU per request above the bare handler's divided by peer's, all
// three from the same round; ok is false when no round gives one (a peer
// at or below the bare handler's CPU gives none).
func (cr caseResult) aboveBareRatio(a, peer string) (interval, bool) {
	i, j, b := cr.index(a), cr.index(peer), cr.index(bareName)
	if i < 0 || j < 0 || b < 0 || i == j || max(i, j, b) >= len(cr.samples) {
		return interval{}, false
	}
	var rs []float64
	for r := 0; r < len(cr.samples[i]) && r < len(cr.samples[j]) && r < len(cr.samples[b]); r++ {
		va, vp, base := serverCPUPerOp(cr.samples[i][r]), serverCPUPerOp(cr.samples[j][r]), serverCPUPerOp(cr.samples[b][r])
		if va >= 0 && base >= 0 && vp > base {
			rs = append(rs, (va-base)/(vp-base))
		}
	}
	if len(rs) == 0 {
		return interval{}, false
	}
	return medianInterval(rs), true
}

// aboveBareTarget: who's server CPU per request above the bare handler's,
// as a fraction of peer's (median of the per-round fractions), at most
// max.
func aboveBareTarget(desc, cases, who, peer string, max float64) target {
	return target{desc: desc, cases: regexp.MustCompile(cases), check: func(cr caseResult) (string, bool, bool) {
		mk := cr.find(who)
		iv, ok := cr.aboveBareRatio(who, peer)
		if mk == nil || !ok {
			return "", false, false
		}
		got := fmt.Sprintf("%s %.2f of %s's", who, iv.med, peer) + fmtInterval(iv, "%.2f")
		a, okA := cr.aboveBare(who)
		p, okP := cr.aboveBare(peer)
		if okA && okP {
			got += fmt.Sprintf(", %s against %s above bare", fmtDur(time.Duration(a.med)), fmtDur(time.Duration(p.med)))
		}
		return got, iv.med <= max && mk.errs == 0, true
	}}
}

// fmtNanos formats a per-request time in nanoseconds, "-" if unknown.
func fmtNanos(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmtDur(time.Duration(v))
}

// writeHTTPTable prints the session benchmarks under an external load
// generator: per request, what the server process spent (CPU time,
// allocations, system calls), memcached's and the load generator's CPU
// time, the server's CPU above the bare handler's and memkit's fraction of
// each peer's.
func writeHTTPTable(w io.Writer, rep *report) {
	var cases []caseResult
	for _, cr := range rep.cases {
		if cr.ext != "" {
			cases = append(cases, cr)
		}
	}
	if len(cases) == 0 {
		return
	}
	fmt.Fprintln(w, "\nsessions under an external load generator (each server in a process of its own; per request: the server's allocations,")
	fmt.Fprintln(w, "system calls and CPU time, memcached's and the load generator's CPU time; above bare: the server's CPU minus the bare handler's):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\timpl\treq/s\tp50\tp99\tallocs/req\treads/writes per req\tserver CPU/req\tmemcached CPU/req\tloadgen CPU/req\tmc calls/req\terrors\tabove bare\t95% interval\tmemkit/row above bare\t95% interval\tmemkit/row req/s\t")
	for _, cr := range cases {
		for i, name := range cr.impls {
			r := cr.results[i]
			label := cr.name
			if i > 0 {
				label = ""
			}
			sys := ""
			if r.readsPerOp >= 0 && r.writesPerOp >= 0 {
				sys = fmt.Sprintf("%.2f/%.2f", r.readsPerOp, r.writesPerOp)
			}
			gen := "-"
			if iv, ok := cr.measure(name, func(s sample) float64 { return s.cpuPerOp(s.genCPU) }); ok {
				gen = fmtNanos(iv.med)
			}
			calls := ""
			if r.callsPerOp >= 0 {
				calls = fmt.Sprintf("%.2f", r.callsPerOp)
			}
			above, aboveIv, ratio, ratioIv, tput := "", "", "", "", ""
			if iv, ok := cr.aboveBare(name); ok && name != bareName {
				above = fmtDur(time.Duration(iv.med))
				if iv.ok {
					aboveIv = fmt.Sprintf("%.1f-%.1fµs", iv.lo/1e3, iv.hi/1e3)
				}
			}
			if name != "memkit" && name != bareName {
				if iv, ok := cr.aboveBareRatio("memkit", name); ok {
					ratio = fmt.Sprintf("%.2f", iv.med)
					if iv.ok {
						ratioIv = fmt.Sprintf("%.2f-%.2f", iv.lo, iv.hi)
					}
				}
			}
			if iv, ok := cr.paired("memkit", name); ok {
				tput = fmt.Sprintf("%.2fx", iv.med)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
				label, name, fmtRate(r.opsPerSec), fmtDur(r.p50), fmtDur(r.p99), r.allocsPerOp, sys,
				fmtNanos(float64(r.cpuPerOp)), fmtNanos(float64(r.srvCPUPerOp)), gen, calls, r.errs,
				above, aboveIv, ratio, ratioIv, tput)
		}
	}
	tw.Flush()
}
