// Package weburltest holds the URLs weburl.Check refuses for their host or
// port, so that every path that stores a URL (client input, links read
// from Stripe) is tested against the same list.
package weburltest

import "strings"

// RefusedHosts maps each URL weburl.Check refuses for its host, its port or
// a character a reader cannot see to
// a fragment of the message it gives ("bad": url.Parse refuses it, and the
// caller's own message is given). A name ending in a number (127.1,
// 2130706433, 0x7f000001) is an IPv4 address to browsers and C resolvers.
func RefusedHosts() map[string]string {
	return map[string]string{
		"https://hooks.acme.test:99999/":                       "port must be a number from 1 to 65535",
		"https://hooks.acme.test:0/":                           "port must be a number from 1 to 65535",
		"https://hooks.acme.test:/":                            "port after the host's colon is missing",
		"https://127.1/":                                       "read as an address",
		"https://2130706433/":                                  "read as an address",
		"https://0x7f000001/":                                  "read as an address",
		"https://0xa9fea9fe/":                                  "read as an address",
		"https://0251.0376.0251.0376/":                         "read as an address",
		"https://127.000.000.001/":                             "read as an address",
		"https://hooks.10/":                                    "read as an address",
		"https://-a.example/":                                  "must be a domain name",
		"https://a-.example/":                                  "must be a domain name",
		"https://a..example/":                                  "must be a domain name",
		"https://.example/":                                    "must be a domain name",
		"https://a.example..":                                  "must be a domain name",
		"https://ex%21ample.com/":                              "bad",
		"https://" + strings.Repeat("a", 64) + ".example/":     "must be a domain name",
		"https://" + strings.Repeat("abcdefghi.", 26) + "com/": "at most 253 characters",
		"https://[fe80::1%25eth0]/":                            "IPv6 address without a zone",
		"https://exa%5Fmple.com/h":                             "bad", // url.Parse refuses an escape in a host
		"https://bücher.example/h":                             "punycode form (xn--",
		"https://ｅxample.com/":                                 "punycode form (xn--",
		// Characters a reader cannot see, anywhere in the URL.
		"https://example.com/\u202egnp.exe": "percent-encode",
		"https://example.com/a\u200bb":      "percent-encode",
		"https://example.com/?q=a\u2028b":   "percent-encode",
		"https://example.com/#\u2066x":      "percent-encode",
		"https://example.com/\ufffe":        "percent-encode",
		"https://example.com/\ue000":        "percent-encode",
		"https://exam\u200bple.com/":        "percent-encode",
	}
}
