package controltable

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc"
)

var (
	started = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	sample  = []amqprpc.Instance{
		{
			Service: "arith", ID: "3f2a9c1e5b7d4e60", Version: "1.2.0", Host: "web-1", PID: 4242,
			Started: started, Prefetch: 64, InFlight: 2, Refused: 3, Metadata: map[string]string{"region": "eu", "commit": "9c1e"},
			Methods: []amqprpc.MethodStats{
				{Name: "Arith.Divide", Calls: 40, Errors: 2, ProcessingTime: 38 * time.Millisecond, AverageProcessingTime: 950 * time.Microsecond, LastError: "divide\nby zero"},
				{Name: "Arith.Multiply", Calls: 120, ProcessingTime: 144 * time.Millisecond, AverageProcessingTime: 1200 * time.Microsecond},
			},
		},
		{
			Service: "arith", ID: "a0b1c2d3e4f50617", Version: "1.3.0", Host: "web-2", PID: 77,
			Started: started.Add(time.Minute), Prefetch: 64,
			Methods: []amqprpc.MethodStats{
				{Name: "Arith.Multiply", Calls: 30, ProcessingTime: 6 * time.Millisecond, AverageProcessingTime: 200 * time.Microsecond},
			},
		},
		{Service: "billing", ID: "ffeeddccbbaa9988"},
	}
)

func TestWriteServices(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteServices(&b, Services(sample)))
	assert.Equal(t, ""+
		"SERVICE  INSTANCES  VERSION\n"+
		"arith    2          1.2.0, 1.3.0\n"+
		"billing  1          -\n", b.String())
}

func TestWriteInfo(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteInfo(&b, sample[:2], started.Add(5*time.Minute+3*time.Second)))
	assert.Equal(t, ""+
		"ID                VERSION  HOST   PID   UPTIME  PREFETCH  IN FLIGHT  METADATA\n"+
		"3f2a9c1e5b7d4e60  1.2.0    web-1  4242  5m3s    64        2          commit=9c1e region=eu\n"+
		"a0b1c2d3e4f50617  1.3.0    web-2  77    4m3s    64        0          -\n", b.String())
}

func TestWriteStats(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteStats(&b, sample[:2]))
	assert.Equal(t, ""+
		"INSTANCE          METHOD          CALLS  ERRORS  AVERAGE  TOTAL TIME  LAST ERROR\n"+
		"3f2a9c1e5b7d4e60  Arith.Divide    40     2       950µs    38ms        divide by zero\n"+
		"3f2a9c1e5b7d4e60  Arith.Multiply  120    0       1.2ms    144ms\n"+
		"3f2a9c1e5b7d4e60  (refused)       3      3       -        -           unknown method, no type, bad content type or size\n"+
		"a0b1c2d3e4f50617  Arith.Multiply  30     0       200µs    6ms\n"+
		"total             Arith.Divide    40     2       950µs    38ms\n"+
		"total             Arith.Multiply  150    0       1ms      150ms\n"+
		"total             (refused)       3      3       -        -\n"+
		"total             (all methods)   190    2       989µs    188ms\n", b.String())
}

func TestWriteStatsOneInstance(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteStats(&b, sample[1:2]))
	assert.Equal(t, ""+
		"INSTANCE          METHOD          CALLS  ERRORS  AVERAGE  TOTAL TIME  LAST ERROR\n"+
		"a0b1c2d3e4f50617  Arith.Multiply  30     0       200µs    6ms\n", b.String())
}

func TestDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999, "999ns"},
		{1234567, "1.23ms"},
		{950 * time.Microsecond, "950µs"},
		{12345 * time.Millisecond, "12.3s"},
		{98765 * time.Second, "27h26m40s"},
	} {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%d) = %q; want %q", tt.d, got, tt.want)
		}
	}
}
