package services_test

import (
	"testing"

	"github.com/amqprpc/amqprpc/examples/internal/brokertest"
)

func TestMain(m *testing.M) { brokertest.Main(m) }
