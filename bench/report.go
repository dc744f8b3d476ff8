package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// target is one of issue 8's goals, checked against a run.
type target struct {
	desc  string
	cases *regexp.Regexp
	// check returns the measured value as text and whether it meets the
	// goal, for one case; ok is false when the case lacks what it needs.
	check func(cr caseResult) (got string, hit, ok bool)
}

func ratioTarget(desc, cases, peer string, min float64) target {
	return target{desc: desc, cases: regexp.MustCompile(cases), check: func(cr caseResult) (string, bool, bool) {
		mk, p, r := cr.find("memkit"), cr.find(peer), cr.ratio(peer)
		if mk == nil || p == nil || r == 0 {
			return "", false, false
		}
		got := fmt.Sprintf("%.2fx %s", r, peer)
		if c := mk.cpuRatio(p); c > 0 {
			got += fmt.Sprintf(" (per CPU-second: %.2fx)", c)
		}
		return got, r >= min && mk.errs == 0, true
	}}
}

var targets = []target{
	ratioTarget("Get at 64 goroutines >= 3x gomemcache", `^get/64g/`, "gomemcache", 3),
	ratioTarget("Get at 1 goroutine >= 0.9x gomemcache", `^get/1g/`, "gomemcache", 0.9),
	ratioTarget("GetMulti >= 1.0x gomemcache", `^getmulti`, "gomemcache", 1),
	{desc: "at most 2 allocations per Get", cases: regexp.MustCompile(`^get/`), check: func(cr caseResult) (string, bool, bool) {
		mk := cr.find("memkit")
		if mk == nil {
			return "", false, false
		}
		return fmt.Sprintf("%.2f allocs/op", mk.allocsPerOp), mk.allocsPerOp <= 2.05, true
	}},
	ratioTarget("session round trip >= 1.5x scs", `^session/rw/`, "scs", 1.5),
	ratioTarget("session round trip >= 1.5x gorilla", `^session/rw/`, "gorilla", 1.5),
	{desc: "untouched session costs no memcached call", cases: regexp.MustCompile(`^session/untouched/`), check: func(cr caseResult) (string, bool, bool) {
		mk := cr.find("memkit")
		if mk == nil || mk.callsPerOp < 0 {
			return "", false, false
		}
		return fmt.Sprintf("%.3f calls/request", mk.callsPerOp), mk.callsPerOp == 0 && mk.errs == 0, true
	}},
}

// cpuRatio is how many more operations per CPU-second (this process and
// memcached together) r gets than peer; 0 if unknown.
func (r *result) cpuRatio(peer *result) float64 {
	mine, theirs := r.cpuPerOp+r.srvCPUPerOp, peer.cpuPerOp+peer.srvCPUPerOp
	if r.cpuPerOp < 0 || r.srvCPUPerOp < 0 || peer.cpuPerOp < 0 || peer.srvCPUPerOp < 0 || mine <= 0 {
		return 0
	}
	return float64(theirs) / float64(mine)
}

// ratio is the paired memkit/peer ops/s ratio; 0 if unknown.
func (cr caseResult) ratio(peer string) float64 {
	for i, n := range cr.impls {
		if n == peer && i < len(cr.ratios) {
			return cr.ratios[i]
		}
	}
	return 0
}

func (cr caseResult) find(name string) *result {
	for i, n := range cr.impls {
		if n == name {
			return &cr.results[i]
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	default:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// printReport prints the comparison table, the targets and the serializer
// table, without trailing blanks.
func printReport(w io.Writer, rep *report) {
	var buf bytes.Buffer
	writeReport(&buf, rep)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		nl := strings.HasSuffix(line, "\n")
		line = strings.TrimRight(line, " \n")
		if nl {
			line += "\n"
		}
		io.WriteString(w, line)
	}
}

func writeReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "machine: %s\n\n", rep.machine)
	if len(rep.cases) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "benchmark\timpl\tops/s\tp50\tp99\tallocs/op\treads/writes per op\tCPU/op bench+memcached\tmc calls/op\terrors\tmemkit/peer\tper CPU\t")
		for _, cr := range rep.cases {
			mk := cr.find("memkit")
			for i, name := range cr.impls {
				r := cr.results[i]
				ratio, cpuRatio := "", ""
				if pr := cr.ratio(name); name != "memkit" && mk != nil && pr > 0 {
					ratio = fmt.Sprintf("%.2fx", pr)
					if c := mk.cpuRatio(&r); c > 0 {
						cpuRatio = fmt.Sprintf("%.2fx", c)
					}
				}
				calls := ""
				if r.callsPerOp >= 0 {
					calls = fmt.Sprintf("%.2f", r.callsPerOp)
				}
				sys := ""
				if r.readsPerOp >= 0 && r.writesPerOp >= 0 {
					sys = fmt.Sprintf("%.2f/%.2f", r.readsPerOp, r.writesPerOp)
				}
				cpu := ""
				if r.cpuPerOp >= 0 && r.srvCPUPerOp >= 0 {
					cpu = fmtDur(r.cpuPerOp) + "+" + fmtDur(r.srvCPUPerOp)
				}
				label := cr.name
				if i > 0 {
					label = ""
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%d\t%s\t%s\t\n",
					label, name, fmtRate(r.opsPerSec), fmtDur(r.p50), fmtDur(r.p99), r.allocsPerOp, sys, cpu, calls, r.errs, ratio, cpuRatio)
			}
		}
		tw.Flush()
		var errLines []string
		for _, cr := range rep.cases {
			for i, r := range cr.results {
				if r.firstErr != nil {
					errLines = append(errLines, fmt.Sprintf("  %s %s: %d errors, first: %v", cr.name, cr.impls[i], r.errs, r.firstErr))
				}
			}
		}
		if len(errLines) > 0 {
			fmt.Fprintf(w, "\nerrors:\n%s\n", strings.Join(errLines, "\n"))
		}

		fmt.Fprintln(w, "\ntargets:")
		for _, t := range targets {
			for _, cr := range rep.cases {
				if !t.cases.MatchString(cr.name) {
					continue
				}
				got, hit, ok := t.check(cr)
				if !ok {
					continue
				}
				verdict := "MISS"
				if hit {
					verdict = "hit "
				}
				fmt.Fprintf(w, "  %s  %-45s %-28s %s\n", verdict, t.desc, cr.name, got)
			}
		}
	}
	if len(rep.serial) > 0 {
		fmt.Fprintln(w, "\nserializer (one goroutine; compressors forced on with MinCompressLen 1, except the default row):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "payload\tformat\tbytes\tmarshal\tallocs\tunmarshal\tallocs\t")
		for _, s := range rep.serial {
			if s.err != nil {
				fmt.Fprintf(tw, "%s\t%s\terror: %v\t\t\t\t\t\n", s.payload, s.format, s.err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f\t%s\t%.0f\t\n", s.payload, s.format, s.size,
				fmtDur(perOp(s.marshal)), s.marshal.allocsPerOp, fmtDur(perOp(s.unmarshal)), s.unmarshal.allocsPerOp)
		}
		tw.Flush()
	}
}

// perOp is the mean time of one operation at the median throughput.
func perOp(r result) time.Duration {
	if r.opsPerSec <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / r.opsPerSec)
}
