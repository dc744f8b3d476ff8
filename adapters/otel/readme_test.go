package memkitotel_test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestReadmeSnippet checks that the README's Go blocks fenced as this
// module's example file are copied, line for line, from it: the README's
// code compiles and runs as the Example does. (examples/readme_test.go
// checks the blocks fenced plain go; these name their file instead.)
func TestReadmeSnippet(t *testing.T) {
	const fence = "```go adapters/otel/example_test.go"
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fenced(string(readme), fence)
	if len(blocks) == 0 {
		t.Fatalf("the README has no block fenced %q", fence)
	}
	src := nonEmptyLines(string(self))
	for i, b := range blocks {
		if !containsRun(src, nonEmptyLines(b)) {
			t.Errorf("README block %d fenced %q is not in example_test.go (copy it from there):\n%s", i+1, fence, b)
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
