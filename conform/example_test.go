package conform_test

import (
	"context"
	"fmt"
	"log"

	"github.com/amqprpc/amqprpc/conform"
)

// A server in any language, serving the conformance service on the queue
// "conformance", checked from Go.
func ExampleCheckServer() {
	report, err := conform.CheckServer(context.Background(), "amqp://guest:guest@localhost:5672/", "conformance",
		conform.ServerOptions{Prefetch: 10})
	if err != nil {
		log.Fatal(err) // no broker, no such queue, nothing consumes it
	}
	for _, r := range report.Failures() {
		fmt.Printf("FAIL %s (%s): %v\n", r.Name, r.Sections, r.Err)
	}
	fmt.Printf("%d passed, %d failed\n", report.Passed(), len(report.Failures()))
}

// A client in any language, judged while it runs the client flow against
// the queue "conformance".
func ExampleServeClient() {
	report, err := conform.ServeClient(context.Background(), "amqp://guest:guest@localhost:5672/", "conformance",
		conform.ClientOptions{Ready: func() { fmt.Println("start the client now") }})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range report.Results {
		fmt.Println(r.Name, r.Passed())
	}
}
