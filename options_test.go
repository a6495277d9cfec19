package amqprpc

import (
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/codec"
)

func TestOptionDefaults(t *testing.T) {
	o, err := newOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.encoding != codec.Gob || o.prefetch != DefaultPrefetch || o.callTimeout != DefaultCallTimeout ||
		o.maxBody != DefaultMaxBodySize || o.directReplyTo || o.transient || o.quorum || o.confirms {
		t.Fatalf("newOptions(nil) = %+v; want the documented defaults", o)
	}
}

func TestOptionValidation(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string // in the error
	}{
		{"prefetch 0", []Option{WithPrefetch(0)}, "WithPrefetch(0)"},
		{"prefetch too big", []Option{WithPrefetch(70000)}, "WithPrefetch(70000)"},
		{"negative timeout", []Option{WithCallTimeout(-time.Second)}, "WithCallTimeout"},
		{"sub-millisecond timeout", []Option{WithCallTimeout(time.Microsecond)}, "1ms"},
		{"unknown encoding", []Option{WithEncoding(codec.Encoding(9))}, "WithEncoding"},
		{"body size 0", []Option{WithMaxBodySize(0)}, "WithMaxBodySize"},
		{"backoff inverted", []Option{WithReconnectBackoff(time.Second, time.Millisecond)}, "WithReconnectBackoff"},
		{"quorum and transient", []Option{WithQuorumQueue(), WithTransientQueue()}, "quorum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newOptions(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "amqprpc: ") {
				t.Fatalf("newOptions = %v; want an amqprpc error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := newOptions([]Option{WithCallTimeout(0)}); err != nil {
		t.Fatalf("WithCallTimeout(0) = %v; want it accepted (never time out)", err)
	}
}

func TestDialRejectsBadArguments(t *testing.T) {
	for _, queue := range []string{"", strings.Repeat("q", 256), "amq.gen-x"} {
		if _, err := Dial("amqp://guest:guest@127.0.0.1:1/", queue); err == nil || !strings.HasPrefix(err.Error(), "amqprpc: ") {
			t.Errorf("Dial(queue %q) = %v; want an amqprpc error", clip(queue, 20), err)
		}
	}
	if _, err := Dial("amqp://guest:guest@127.0.0.1:1/", "q", WithPrefetch(-1)); err == nil {
		t.Errorf("Dial with WithPrefetch(-1) = nil error; want the option rejected")
	}
}
