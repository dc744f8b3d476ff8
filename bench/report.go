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

// target is one of the issues' goals, checked against a run.
type target struct {
	desc  string
	cases *regexp.Regexp
	// check returns the measured value as text and whether it meets the
	// goal, for one case; ok is false when the case lacks what it needs.
	check func(cr caseResult) (got string, hit, ok bool)
}

// minRounds is how many rounds issue 17 asks a target to be judged on.
const minRounds = 10

// fmtInterval is " (95 % interval lo-hi, n rounds)" with the values
// formatted by f, and a warning under minRounds.
func fmtInterval(iv interval, f string) string {
	var b strings.Builder
	b.WriteString(" (95 % interval ")
	if iv.ok {
		fmt.Fprintf(&b, f+"-"+f, iv.lo, iv.hi)
	} else {
		b.WriteString("unknown")
	}
	fmt.Fprintf(&b, ", %d rounds", iv.n)
	if iv.n < minRounds {
		fmt.Fprintf(&b, ": judge on >= %d", minRounds)
	}
	b.WriteString(")")
	return b.String()
}

// ratioTarget: who's ops/s over peer's, median of the paired per-round
// ratios, at least min.
func ratioTarget(desc, cases, who, peer string, min float64) target {
	return target{desc: desc, cases: regexp.MustCompile(cases), check: func(cr caseResult) (string, bool, bool) {
		mk, p := cr.find(who), cr.find(peer)
		iv, ok := cr.paired(who, peer)
		if mk == nil || p == nil || !ok {
			return "", false, false
		}
		got := fmt.Sprintf("%s %.2fx %s", who, iv.med, peer) + fmtInterval(iv, "%.2f")
		if c := mk.cpuRatio(p); c > 0 {
			got += fmt.Sprintf(", per CPU-second %.2fx", c)
		}
		return got, iv.med >= min && mk.errs == 0, true
	}}
}

// limitTarget: who's ops/s as a fraction of the batched client's in the
// same round (median of the paired fractions), at least min.
func limitTarget(desc, cases, who string, min float64) target {
	return target{desc: desc, cases: regexp.MustCompile(cases), check: func(cr caseResult) (string, bool, bool) {
		mk := cr.find(who)
		iv, ok := cr.paired(who, limitName)
		if mk == nil || !ok {
			return "", false, false
		}
		return fmt.Sprintf("%s %.3f of the limit", who, iv.med) + fmtInterval(iv, "%.3f"), iv.med >= min && mk.errs == 0, true
	}}
}

// perOpTarget: the median over rounds of who's per-operation measure
// (what, of a sample) at most max.
func perOpTarget(desc, cases, who, unit string, max float64, what func(sample) float64) target {
	return target{desc: desc, cases: regexp.MustCompile(cases), check: func(cr caseResult) (string, bool, bool) {
		mk := cr.find(who)
		iv, ok := cr.measure(who, what)
		if mk == nil || !ok || iv.med < 0 {
			return "", false, false
		}
		return fmt.Sprintf("%s %.3f %s", who, iv.med, unit) + fmtInterval(iv, "%.3f"), iv.med <= max && mk.errs == 0, true
	}}
}

func writesPerOp(s sample) float64 { return s.perOp(s.writes) }
func allocsPerOp(s sample) float64 { return s.allocsPerOp() }

// allocSlack allows for the collector emptying memclient's sync.Pools
// during a run (they then refill): "at most 1 allocation per Get" is met
// by 1.05 per Get.
const allocSlack = 0.05

var targets = []target{
	// Issue 17 (performance, round two), those measurable here.
	limitTarget("Get@64 100B 3srv >= 0.3 of the limit", `^get/64g/100B/3srv$`, "memkit", 0.3),
	ratioTarget("Get@64 100B 3srv >= 5x gomemcache", `^get/64g/100B/3srv$`, "memkit", "gomemcache", 5),
	perOpTarget("Get@64 100B 3srv <= 0.07 write(2) per Get", `^get/64g/100B/3srv$`, "memkit", "writes/op", 0.07, writesPerOp),
	ratioTarget("Get@64 100B 1srv >= 3.5x gomemcache", `^get/64g/100B/1srv$`, "memkit", "gomemcache", 3.5),
	ratioTarget("Get 10KB at 64 goroutines >= 3x gomemcache", `^get/64g/10KB/`, "memkit", "gomemcache", 3),
	ratioTarget("Get 100KB, 1MB >= 1.0x gomemcache", `^get/\d+g/(100KB|1MB)/`, "memkit", "gomemcache", 1),
	ratioTarget("GetInto 100KB, 1MB >= 1.2x gomemcache", `^get/\d+g/(100KB|1MB)/`, "memkit-into", "gomemcache", 1.2),
	ratioTarget("Get@1 100B, 10KB >= 1.05x gomemcache", `^get/1g/(100B|10KB)/`, "memkit", "gomemcache", 1.05),
	perOpTarget("at most 1 allocation per Get", `^get/`, "memkit", "allocs/op", 1+allocSlack, allocsPerOp),
	perOpTarget("no allocation per GetInto", `^get/`, "memkit-into", "allocs/op", allocSlack, allocsPerOp),
	aboveBareTarget("session CPU above bare <= 1/3 of scs's", `^session-\w+/`, "memkit", "scs", 1.0/3),
	// Issue 8's, not superseded by issue 17's.
	ratioTarget("GetMulti >= 1.0x gomemcache", `^getmulti`, "memkit", "gomemcache", 1),
	ratioTarget("session round trip >= 1.5x scs", `^session/rw/`, "memkit", "scs", 1.5),
	ratioTarget("session round trip >= 1.5x gorilla", `^session/rw/`, "memkit", "gorilla", 1.5),
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

func (cr caseResult) index(name string) int {
	for i, n := range cr.impls {
		if n == name {
			return i
		}
	}
	return -1
}

func (cr caseResult) find(name string) *result {
	if i := cr.index(name); i >= 0 {
		return &cr.results[i]
	}
	return nil
}

// paired is the median over rounds of a's ops/s divided by b's in the
// same round, with its interval; ok is false when a or b did not run (or
// are the same) or no round has a throughput for b.
func (cr caseResult) paired(a, b string) (interval, bool) {
	i, j := cr.index(a), cr.index(b)
	if i < 0 || j < 0 || i == j || i >= len(cr.samples) || j >= len(cr.samples) {
		return interval{}, false
	}
	return pairedRatios(cr.samples[i], cr.samples[j])
}

// pairedRatios is the median and interval over rounds of a's ops/s over
// b's in the same round; ok is false when no round pairs up.
func pairedRatios(a, b []sample) (interval, bool) {
	var rs []float64
	for r := 0; r < len(a) && r < len(b); r++ {
		if p := b[r].opsPerSec(); p > 0 {
			rs = append(rs, a[r].opsPerSec()/p)
		}
	}
	if len(rs) == 0 {
		return interval{}, false
	}
	return medianInterval(rs), true
}

// measure is the median over rounds, with its interval, of what gives
// for each of name's samples; ok is false when name did not run.
func (cr caseResult) measure(name string, what func(sample) float64) (interval, bool) {
	i := cr.index(name)
	if i < 0 || i >= len(cr.samples) || len(cr.samples[i]) == 0 {
		return interval{}, false
	}
	v := make([]float64, len(cr.samples[i]))
	for r, s := range cr.samples[i] {
		v[r] = what(s)
	}
	return medianInterval(v), true
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
	fmt.Fprintf(w, "machine: %s\n", rep.machine)
	inProcess := 0
	for _, cr := range rep.cases {
		if cr.ext == "" {
			inProcess++
		}
	}
	if inProcess > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "benchmark\timpl\tops/s\tp50\tp99\tallocs/op\treads/writes per op\tCPU/op bench+memcached\tmc calls/op\terrors\tof limit\tmemkit/peer\t95% interval\tper CPU\t")
		for _, cr := range rep.cases {
			if cr.ext != "" {
				continue // in writeHTTPTable's table
			}
			mk := cr.find("memkit")
			for i, name := range cr.impls {
				r := cr.results[i]
				ofLimit, ratio, ratioIv, cpuRatio := "", "", "", ""
				if iv, ok := cr.paired(name, limitName); ok {
					ofLimit = fmt.Sprintf("%.3f", iv.med)
				}
				if iv, ok := cr.paired("memkit", name); ok && name != limitName {
					ratio = fmt.Sprintf("%.2fx", iv.med)
					if iv.ok {
						ratioIv = fmt.Sprintf("%.2f-%.2f", iv.lo, iv.hi)
					}
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n",
					label, name, fmtRate(r.opsPerSec), fmtDur(r.p50), fmtDur(r.p99), r.allocsPerOp, sys, cpu, calls, r.errs, ofLimit, ratio, ratioIv, cpuRatio)
			}
		}
		tw.Flush()
	}
	writeHTTPTable(w, rep)
	if len(rep.cases) > 0 {
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
				fmt.Fprintf(w, "  %s  %-43s %-27s %s\n", verdict, t.desc, cr.name, got)
			}
		}
	}
	if len(rep.notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.notes {
			fmt.Fprintf(w, "  %s\n", n)
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
