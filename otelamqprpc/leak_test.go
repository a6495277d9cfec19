package otelamqprpc_test

import (
	"testing"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestMain fails the run when the tests leave goroutines behind.
func TestMain(m *testing.M) { brokertest.Main(m) }
