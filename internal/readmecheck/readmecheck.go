// Package readmecheck is the test helper that keeps a README's Go code
// in sync with the file it is copied from (the examples module's
// readme_test.go, an adapter's example_test.go), so that the README's
// code compiles and runs.
package readmecheck

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Check fails t unless the README at readmePath has at least minBlocks
// blocks opening with the line fence ("```go", say, or "```go
// adapters/otel/example_test.go") and every one of them is in the file
// at srcPath as a contiguous run of lines, blank lines and indentation
// aside. It stops t (Fatal) when a file cannot be read or the blocks are
// too few, and reports each block missing from srcPath (Error).
func Check(t testing.TB, readmePath, srcPath, fence string, minBlocks int) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := fenced(string(readme), fence)
	if len(blocks) < minBlocks {
		t.Fatalf("%s has %d blocks fenced %q, want at least %d", readmePath, len(blocks), fence, minBlocks)
	}
	src := nonEmptyLines(string(self))
	for i, b := range blocks {
		if !containsRun(src, nonEmptyLines(b)) {
			t.Errorf("%s block %d fenced %q is not in %s (copy it from there):\n%s", readmePath, i+1, fence, srcPath, b)
		}
	}
}

// fenced returns the bodies of the blocks of md that open with fence.
func fenced(md, fence string) []string {
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == fence:
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// nonEmptyLines returns the non-empty lines of s, trimmed.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// containsRun reports whether sub appears in lines as a contiguous run.
func containsRun(lines, sub []string) bool {
	for i := 0; i+len(sub) <= len(lines); i++ {
		match := true
		for j := range sub {
			if lines[i+j] != sub[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
