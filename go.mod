module github.com/memkit/memkit

go 1.26.0

require (
	github.com/gorilla/securecookie v1.1.2
	github.com/klauspost/compress v1.20.3
	github.com/stretchr/testify v1.12.1
	github.com/vmihailenco/msgpack/v5 v5.4.1
)

require (
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
