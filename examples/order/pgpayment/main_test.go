package pgpayment_test

import (
	"os"
	"testing"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a payment server for the tests that kill
	// one (killed_test.go).
	if queue := os.Getenv(childQueueEnv); queue != "" {
		os.Exit(runPaymentChild(queue))
	}
	brokertest.Main(m)
}
