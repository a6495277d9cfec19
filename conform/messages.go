package conform

// How the checks say what they saw: lengths, the first byte that differs,
// and the value itself, never a constant.

import (
	"fmt"
	"sort"
	"strings"
)

// differ says how got differs from want, two texts that are not equal:
// their lengths, and where and how they first differ.
func differ(got, want string) string {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	lengths := fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	switch {
	case n == len(got):
		return fmt.Sprintf("%s: it is the first %d bytes of what was wanted, which goes on %+.24q", lengths, n, want[n:])
	case n == len(want):
		return fmt.Sprintf("%s: it is what was wanted followed by %+.24q", lengths, got[n:])
	}
	return fmt.Sprintf("%s: they first differ at byte %d, 0x%02x where 0x%02x was wanted (%+.24q, want %+.24q from there)",
		lengths, n, got[n], want[n], got[n:], want[n:])
}

// replyProperties lists the properties and headers of r that a reply may
// not carry (§4): everything but content_type, correlation_id and, when
// errorReply, the x-rpc-error header. An empty headers table is none.
func replyProperties(r reply, errorReply bool) []string {
	var extra []string
	add := func(set bool, name string, v any) {
		if set {
			extra = append(extra, fmt.Sprintf("%s %.40q", name, fmt.Sprint(v)))
		}
	}
	add(r.ContentEncoding != "", "content_encoding", r.ContentEncoding)
	add(r.DeliveryMode != 0, "delivery_mode", r.DeliveryMode)
	add(r.Priority != 0, "priority", r.Priority)
	add(r.ReplyTo != "", "reply_to", r.ReplyTo)
	add(r.Expiration != "", "expiration", r.Expiration)
	add(r.MessageId != "", "message_id", r.MessageId)
	add(!r.Timestamp.IsZero(), "timestamp", r.Timestamp.Unix())
	add(r.Type != "", "type", r.Type)
	add(r.UserId != "", "user_id", r.UserId)
	add(r.AppId != "", "app_id", r.AppId)
	keys := make([]string, 0, len(r.Headers))
	for key := range r.Headers {
		if key != errorHeader || !errorReply {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		extra = append(extra, fmt.Sprintf("header %.40q", key))
	}
	return extra
}

// wantOnlyReplyProperties fails r if it carries what §4 says a reply does
// not.
func wantOnlyReplyProperties(r reply, errorReply bool) error {
	if extra := replyProperties(r, errorReply); len(extra) > 0 {
		return fmt.Errorf("the reply carries %s; a reply carries content_type, correlation_id and, when the call failed, the header x-rpc-error, and nothing else (§4)",
			strings.Join(extra, ", "))
	}
	return nil
}
