module github.com/memkit/memkit/bench

go 1.26.0

replace github.com/memkit/memkit => ../

replace github.com/memkit/memkit/adapters/otterlocal => ../adapters/otterlocal

require (
	github.com/QuangTung97/go-memcache v0.3.5
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c
	github.com/gorilla/securecookie v1.1.2
	github.com/gorilla/sessions v1.4.0
	github.com/grafana/gomemcache v0.0.0-20251127154401-74f93547077b
	github.com/memkit/memkit v0.0.0-00010101000000-000000000000
	github.com/memkit/memkit/adapters/otterlocal v0.0.0-00010101000000-000000000000
	github.com/rainycape/memcache v0.0.0-20150622160815-1031fa0ce2f2
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
