package conform

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestDiffer: a difference is told by lengths and the first byte that
// differs, so that texts that look the same (here é precomposed and
// decomposed) are not shown as equal.
func TestDiffer(t *testing.T) {
	for _, tt := range []struct{ got, want, has string }{
		{"caf\u00e9", "cafe\u0301", "5 bytes, want 6: they first differ at byte 3, 0xc3 where 0x65 was wanted"},
		{"abc", "abcdef", "3 bytes, want 6: it is the first 3 bytes of what was wanted, which goes on \"def\""},
		{"abc\n", "abc", "4 bytes, want 3: it is what was wanted followed by \"\\n\""},
	} {
		if got := differ(tt.got, tt.want); !strings.Contains(got, tt.has) {
			t.Errorf("differ(%+q, %+q) = %q; want it to hold %q", tt.got, tt.want, got, tt.has)
		}
	}
}

// TestWantCut: any marker, or none, after a kept start of at least 1024
// bytes on a character boundary, within 3072 bytes.
func TestWantCut(t *testing.T) {
	text := "long: " + strings.Repeat("😀", 1500)
	keep := text[:3066]
	for _, tt := range []struct {
		name, got string
		ok        bool
	}{
		{"dots", keep + "...", true},
		{"ellipsis", keep + "…", true},
		{"other marker", keep[:2998] + " [cut]", true},
		{"no marker", keep, true},
		{"too long", text[:3070] + "...", false},
		{"inside a character", text[:3068], false},
		{"too short", text[:1022], false},
		{"not the start", "x" + keep, false},
	} {
		if err := wantCut(tt.got, text); (err == nil) != tt.ok {
			t.Errorf("wantCut(%s) = %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestReplyProperties: everything but content_type, correlation_id and an
// error reply's x-rpc-error is named; an empty headers table is none.
func TestReplyProperties(t *testing.T) {
	ok := reply{Delivery: amqp.Delivery{ContentType: "application/json", CorrelationId: "1", Headers: amqp.Table{}}}
	if extra := replyProperties(ok, false); len(extra) != 0 {
		t.Errorf("replyProperties(a plain reply) = %q; want none", extra)
	}
	failed := reply{Delivery: amqp.Delivery{ContentType: "application/json", Headers: amqp.Table{errorHeader: "x"}}}
	if extra := replyProperties(failed, true); len(extra) != 0 {
		t.Errorf("replyProperties(an error reply) = %q; want none", extra)
	}
	if extra := replyProperties(failed, false); len(extra) != 1 {
		t.Errorf("replyProperties(x-rpc-error on a result) = %q; want it named", extra)
	}
	busy := reply{Delivery: amqp.Delivery{ReplyTo: "q", Expiration: "5", MessageId: "m", Timestamp: time.Unix(1, 0),
		Type: "t", AppId: "a", DeliveryMode: 2, Priority: 1, Headers: amqp.Table{"x-other": "y"}}}
	if extra := replyProperties(busy, false); len(extra) != 9 {
		t.Errorf("replyProperties(a reply with nine more) = %q; want nine", extra)
	}
}
