package memkitprom_test

import (
	"testing"

	"github.com/memkit/memkit/internal/readmecheck"
)

// TestReadmeSnippet checks that the README's Go blocks fenced as this
// module's example file are copied, line for line, from it: the README's
// code compiles and runs as the Example does. (examples/readme_test.go
// checks the blocks fenced plain go; these name their file instead.)
func TestReadmeSnippet(t *testing.T) {
	readmecheck.Check(t, "../../README.md", "example_test.go", "```go adapters/prometheus/example_test.go", 1)
}
