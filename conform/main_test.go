package conform

import (
	"testing"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestMain(m *testing.M) { brokertest.Main(m) }
