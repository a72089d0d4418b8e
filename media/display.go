package media

import "strings"

// Display is a camera source as it may be printed or logged: a URL's
// password (rtsp://user:password@host/...) replaced by ***.
func Display(source string) string {
	scheme, rest, ok := strings.Cut(source, "://")
	if !ok {
		return source
	}
	host, path, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(host, '@')
	if at < 0 {
		return source
	}
	user, _, hasPw := strings.Cut(host[:at], ":")
	if !hasPw {
		return source
	}
	out := scheme + "://" + user + ":***@" + host[at+1:]
	if path != "" || strings.Contains(rest, "/") {
		out += "/" + path
	}
	return out
}
