// Command bench compares amqprpc with net/rpc over TCP loopback, with the
// simplest correct request/reply written directly on amqp091-go (the
// floors) and with the peer, github.com/0x4b53/amqp-rpc/v5, in one run
// against one broker; judges issue 19's targets; climbs a cost ladder from
// the barest floor to amqprpc with confirms; and writes a Markdown report
// with a throughput chart:
//
//	go run . -out ../../docs/bench.md
//
// Every cell runs for a fixed time, so the whole run is bounded (about four
// minutes with the defaults). It is its own module so that the plotting
// library and the peer stay out of the library's go.mod.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// config is what the flags set.
type config struct {
	url, out     string
	cellTime     time.Duration // per cell of the comparison, all rounds together
	rounds       int
	warmup       time.Duration
	codecTime    time.Duration
	ladderTime   time.Duration // per step of the ladder, all rounds together
	ladderWarmup time.Duration
	brokerPID    int
	only         map[string]bool // the comparison's transports to measure (nil: all)
}

func parseFlags() config {
	var c config
	defaultURL := os.Getenv("AMQP_URL")
	if defaultURL == "" {
		defaultURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	flag.StringVar(&c.url, "url", defaultURL, "broker URL (default $AMQP_URL or the local broker)")
	flag.StringVar(&c.out, "out", "bench.md", "the Markdown report to write; the chart goes beside it")
	flag.DurationVar(&c.cellTime, "d", 1500*time.Millisecond, "how long each cell of the comparison is measured, in all")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds over all cells and over the ladder, each measuring every one for its d/rounds")
	flag.DurationVar(&c.warmup, "warmup", 100*time.Millisecond, "calls made before each round of a cell is measured")
	flag.DurationVar(&c.codecTime, "codec-d", 250*time.Millisecond, "how long each codec cost is measured")
	flag.DurationVar(&c.ladderTime, "ladder-d", 3*time.Second, "how long each step of the cost ladder is measured, in all (0: no ladder)")
	flag.DurationVar(&c.ladderWarmup, "ladder-warmup", 200*time.Millisecond, "calls made before each round of a ladder step is measured")
	flag.IntVar(&c.brokerPID, "broker-pid", 0, "the broker's process, whose CPU time is read (default: found from the URL's port)")
	only := flag.String("only", "", "measure only these transports of the comparison, comma-separated (default: all)")
	flag.Parse()
	if *only != "" {
		c.only = map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(name)] = true
		}
	}
	least := time.Duration(c.rounds) * time.Millisecond
	if c.rounds < 1 || c.cellTime < least || (c.ladderTime != 0 && c.ladderTime < least) {
		log.Fatalf("want -rounds of at least 1, and -d and -ladder-d of at least a millisecond a round")
	}
	return c
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	cfg := parseFlags()
	// Fail now rather than after the run if the report cannot be written.
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		log.Fatal(err)
	}
	if f, err := os.OpenFile(cfg.out, os.O_WRONLY|os.O_CREATE, 0o644); err != nil {
		log.Fatal(err)
	} else {
		f.Close()
	}

	r := &run{config: cfg, started: time.Now(), cells: map[key]*series{}, load: [2]string{loadAverage()}}
	conn, err := amqp.Dial(cfg.url)
	if err != nil {
		log.Fatalf("no broker at %s: %v", redactURL(cfg.url), err)
	}
	r.broker = fmt.Sprint(conn.Properties["product"], " ", conn.Properties["version"])
	conn.Close()
	r.meter = newMeter(cfg.url, cfg.brokerPID)
	log.Printf("broker process: %s", r.meter.about())

	r.measureCodecs()
	r.measureComparison()
	if cfg.ladderTime > 0 {
		r.measureLadder()
	}
	r.took, r.load[1] = time.Since(r.started), loadAverage()

	report := r.markdown(chartName(cfg.out))
	if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := r.chart(chartPath(cfg.out)); err != nil {
		log.Fatal(err)
	}
	fmt.Print(report)
	log.Printf("wrote %s and %s in %v", cfg.out, chartPath(cfg.out), time.Since(r.started).Round(time.Second))
}
