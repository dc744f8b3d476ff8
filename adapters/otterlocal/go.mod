module github.com/memkit/memkit/adapters/otterlocal

go 1.26.0

require (
	github.com/maypok86/otter/v2 v2.4.0
	github.com/memkit/memkit v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

// The core module from this repository: tests and development always run
// against the code beside them.
replace github.com/memkit/memkit => ../..
