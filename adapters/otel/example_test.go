package memkitotel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	memkitotel "github.com/memkit/memkit/adapters/otel"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// servers is the memcached server the example uses, started by TestMain.
var servers []memclient.Server

func TestMain(m *testing.M) {
	os.Exit(memcachetest.Main(m, func() (func(), error) {
		p, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			return nil, err
		}
		servers = []memclient.Server{{Addr: p.Addr}}
		return p.Close, nil
	}))
}

// One Observer traces and counts what a client, an object cache and a
// session manager do, on the global providers that the application's
// SDK set up (here: spans kept in memory, metrics read on demand). The
// README's "Metrics and traces" shows its first lines (TestReadmeSnippet
// keeps them in sync).
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	otel.SetMeterProvider(mp)

	tel, err := memkitotel.New() // spans and metrics on the global TracerProvider and MeterProvider
	if err != nil {
		log.Fatal(err)
	}
	mc, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Observer: tel})
	if err != nil {
		log.Fatal(err)
	}
	tel.WatchClient(mc) // memkit.memcached.server.up for every server from the first collection
	cache, err := objcache.New(mc, objcache.Options{Observer: tel})
	if err != nil {
		log.Fatal(err)
	}
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: tel}
	defer tel.Close()
	defer mc.Close()
	defer mgr.Close()

	// A request: its memcached calls are its child spans, what the cache
	// did are events on its span.
	ctx, request := tp.Tracer("shop").Start(context.Background(), "GET /products/42")
	if _, err := mc.Get(ctx, "greeting"); !errors.Is(err, memclient.ErrCacheMiss) {
		log.Fatal(err)
	}
	for range 2 {
		_, err := objcache.GetOrLoad(ctx, cache, "product:42", time.Minute, func(context.Context) (string, error) {
			return "a teapot", nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	request.End()

	ended := spans.Ended()
	get := ended[0]
	fmt.Println(strings.ReplaceAll(get.Name(), servers[0].Addr, "memcached:11211"), "child of", request.SpanContext().SpanID() == get.Parent().SpanID())
	for _, a := range get.Attributes() {
		if a.Key == "db.system.name" || a.Key == "db.operation.name" || a.Key == "memkit.memcached.outcome" {
			fmt.Printf("  %s=%s\n", a.Key, a.Value.Emit())
		}
	}
	fmt.Println("status:", get.Status().Code)
	for _, ev := range ended[len(ended)-1].Events() {
		fmt.Println("event:", ev.Name)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "memkit.objcache.hits" || m.Name == "memkit.memcached.server.up" {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					fmt.Println(m.Name, d.DataPoints[0].Value)
				case metricdata.Gauge[int64]:
					fmt.Println(m.Name, d.DataPoints[0].Value)
				}
			}
		}
	}
	// Output:
	// get memcached:11211 child of true
	//   db.system.name=memcached
	//   db.operation.name=get
	//   memkit.memcached.outcome=miss
	// status: Unset
	// event: memkit.objcache.miss
	// event: memkit.objcache.load
	// event: memkit.objcache.hit
	// memkit.memcached.server.up 1
	// memkit.objcache.hits 1
}
