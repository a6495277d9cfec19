package amqprpc

import (
	"net/url"
	"strings"
)

// redactedPassword replaces a password wherever a URL appears in text the
// library produces.
const redactedPassword = "xxxxx"

// RedactURL returns rawURL with its password replaced, for logs and errors.
// It works on URLs that do not parse, too.
func RedactURL(rawURL string) string {
	pw, start, end := findPassword(rawURL)
	if start < 0 || pw == "" {
		return rawURL
	}
	return rawURL[:start] + redactedPassword + rawURL[end:]
}

// scrub removes every form of rawURL's password from text, so an error from a
// lower layer that quotes the URL cannot leak it.
func scrub(text, rawURL string) string {
	pw, _, _ := findPassword(rawURL)
	if pw == "" {
		return text
	}
	text = strings.ReplaceAll(text, pw, redactedPassword)
	if un, err := url.PathUnescape(pw); err == nil && un != pw && un != "" {
		text = strings.ReplaceAll(text, un, redactedPassword)
	}
	if esc := url.QueryEscape(pw); esc != pw {
		text = strings.ReplaceAll(text, esc, redactedPassword)
	}
	return text
}

// findPassword locates the password in the user information of rawURL:
// scheme://user:password@host/... It returns the password as written and its
// bounds, or start -1 when there is none.
func findPassword(rawURL string) (pw string, start, end int) {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return "", -1, -1
	}
	authStart := i + 3
	authority := rawURL[authStart:]
	if j := strings.IndexAny(authority, "/?#"); j >= 0 {
		// An '@' after the first '/' still ends the user information when
		// the password itself holds a '/' that was not escaped.
		if at := strings.LastIndex(authority, "@"); at > j {
			j = len(authority)
		}
		authority = authority[:j]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return "", -1, -1
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 {
		return "", -1, -1
	}
	start = authStart + colon + 1
	end = authStart + at
	return rawURL[start:end], start, end
}
