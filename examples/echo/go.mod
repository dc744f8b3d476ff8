module github.com/memkit/memkit/examples/echo

go 1.26.0

// The core module and the gorilla/sessions adapter from this repository:
// the example always runs against the code beside it.
replace (
	github.com/memkit/memkit => ../..
	github.com/memkit/memkit/adapters/gorillastore => ../../adapters/gorillastore
)

require (
	github.com/gorilla/sessions v1.4.0
	github.com/labstack/echo-contrib v0.17.4
	github.com/labstack/echo/v4 v4.16.0
	github.com/memkit/memkit v0.0.0-00010101000000-000000000000
	github.com/memkit/memkit/adapters/gorillastore v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/gorilla/context v1.1.2 // indirect
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/labstack/gommon v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.15 // indirect
	github.com/mattn/go-isatty v0.0.22 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.53.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.46.0 // indirect
	golang.org/x/text v0.40.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
