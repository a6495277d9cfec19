// Command bench compares amqprpc with net/rpc over TCP loopback and with the
// simplest correct request/reply written directly on amqp091-go (the raw
// floor), in one run against one broker, and writes a Markdown report with
// a throughput chart:
//
//	go run . -out ../../docs/bench.md
//
// Every cell runs for a fixed time, so the whole run is bounded (about a
// minute and a half with the defaults). It is its own module so that the
// plotting dependency stays out of the library's go.mod.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
)

// plan is what the run measures: every transport at each payload and
// number of concurrent callers (1 means serial calls, which also give the
// latency percentiles and allocations).
var plan = []struct {
	load    load
	callers []int
}{
	{small, []int{1, 16, 128}},
	{blob4K, []int{1, 16, 128}},
	{blob256K, []int{1, 16}},
}

// run is everything the report needs.
type run struct {
	url        string
	broker     string
	cellTime   time.Duration
	rounds     int
	warmup     time.Duration
	started    time.Time
	took       time.Duration
	transports []*transport
	cells      map[key]cell
	codec      []codecCost
}

type key struct {
	transport, load string
	callers         int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	defaultURL := os.Getenv("AMQP_URL")
	if defaultURL == "" {
		defaultURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	url := flag.String("url", defaultURL, "broker URL (default $AMQP_URL or the local broker)")
	out := flag.String("out", "bench.md", "the Markdown report to write; the chart goes beside it")
	cellTime := flag.Duration("d", time.Second, "how long each cell is measured, in all")
	rounds := flag.Int("rounds", 3, "rounds over all the cells, each measuring every cell for d/rounds")
	warmup := flag.Duration("warmup", 100*time.Millisecond, "calls made before each round of a cell is measured")
	codecTime := flag.Duration("codec-d", 250*time.Millisecond, "how long each codec cost is measured")
	flag.Parse()
	if *rounds < 1 || *cellTime < time.Duration(*rounds)*time.Millisecond {
		log.Fatalf("want -rounds of at least 1 and -d of at least a millisecond a round")
	}

	// Fail now rather than after the run if the report cannot be written.
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		log.Fatal(err)
	}
	if f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE, 0o644); err != nil {
		log.Fatal(err)
	} else {
		f.Close()
	}

	r := &run{url: *url, cellTime: *cellTime, rounds: *rounds, warmup: *warmup, started: time.Now(), cells: map[key]cell{}}
	conn, err := amqp.Dial(*url)
	if err != nil {
		log.Fatalf("no broker at %s: %v", redactURL(*url), err)
	}
	r.broker = fmt.Sprint(conn.Properties["product"], " ", conn.Properties["version"])
	conn.Close()

	for _, enc := range []codec.Encoding{codec.Gob, codec.JSON} {
		for _, p := range plan {
			r.codec = append(r.codec, measureCodec(enc, p.load, *codecTime))
		}
	}

	r.transports = transports()
	suffix := strings.ToLower(rand.Text()[:8])
	for _, t := range r.transports {
		t.c, t.stop, t.broken = t.start(*url, "amqprpc-bench-"+t.name+"-"+suffix)
		if t.broken != nil {
			log.Printf("%s: cannot start: %v", t.name, t.broken)
		}
	}
	// Round after round over every cell, and in each cell every transport
	// in turn, so that noise from the rest of the machine spreads over all
	// of them rather than hitting one.
	slice := *cellTime / time.Duration(*rounds)
	for round := 1; round <= *rounds; round++ {
		for _, p := range plan {
			for _, n := range p.callers {
				for _, t := range r.transports {
					if t.broken != nil {
						continue
					}
					var c cell
					if n == 1 {
						c = measureSerial(t.c, p.load, *warmup, slice)
					} else {
						c = measureThroughput(t.c, p.load, n, *warmup, slice)
					}
					k := key{t.name, p.load.name, n}
					sum := r.cells[k]
					sum.add(c)
					r.cells[k] = sum
					if c.hungClosing {
						t.broken = fmt.Errorf("%s with %d callers overran by %v; its client was closed", p.load.name, n, watchdog)
					}
					if c.firstErr != nil {
						log.Printf("%s %s x%d: %d errors, first: %v", t.name, p.load.name, n, c.errs, c.firstErr)
					}
				}
			}
		}
		log.Printf("round %d of %d done after %v", round, *rounds, time.Since(r.started).Round(time.Second))
	}
	for k, c := range r.cells {
		c.finish()
		r.cells[k] = c
	}
	for _, t := range r.transports {
		if t.c != nil {
			t.c.Close()
			t.stop()
		}
	}
	r.took = time.Since(r.started)

	report := r.markdown(chartName(*out))
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := r.chart(chartPath(*out)); err != nil {
		log.Fatal(err)
	}
	fmt.Print(report)
	log.Printf("wrote %s and %s in %v", *out, chartPath(*out), time.Since(r.started).Round(time.Second))
}
