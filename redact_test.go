package amqprpc

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"amqps://user:s3cr%2Ft@host/vhost", "amqps://user:xxxxx@host/vhost"},
		{"amqp://user:pa/ss@host:5672/v", "amqp://user:xxxxx@host:5672/v"},
		{"amqp://user@host/", "amqp://user@host/"},
		{"amqp://host/", "amqp://host/"},
		{"not a url", "not a url"},
		{"amqp://u:p@[::1", "amqp://u:xxxxx@[::1"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrub(t *testing.T) {
	url := "amqp://user:s3cr%2Ft@host/"
	text := `parse "amqp://user:s3cr%2Ft@host/": s3cr/t and s3cr%2Ft`
	got := scrub(text, url)
	if strings.Contains(got, "s3cr") {
		t.Fatalf("scrub(%q) = %q; want no trace of the password", text, got)
	}
}
