package signing

import (
	"net/url"
	"testing"
)

// These strings are the contract clients in other languages implement from
// the README; a change here breaks every one of them.
func TestCanonical(t *testing.T) {
	cases := []struct {
		name   string
		method string
		target string
		body   string
		want   string
	}{
		{"a POST signs method, path, timestamp, nonce and body hash", "POST", "/graphql", `{}`,
			"POST\n/graphql\n1700000000\n3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
		{"a GET signs the raw query and the hash of the empty body", "GET", "/graphql?query=%7Bme%7D", "",
			"GET\n/graphql?query=%7Bme%7D\n1700000000\n3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Canonical(tc.method, tc.target, 1700000000, "3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11", []byte(tc.body))
			if got != tc.want {
				t.Fatalf("Canonical =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestSignedPath(t *testing.T) {
	cases := []struct {
		name string
		url  string
		want string
	}{
		{"a URL without a path is signed as /", "https://billing.example.com", "/"},
		{"the query is signed still encoded", "https://billing.example.com/graphql?query=%7B%20me%20%7D", "/graphql?query=%7B%20me%20%7D"},
		{"the path is signed decoded", "https://billing.example.com/a%20b", "/a b"},
		{"an empty query is not signed", "https://billing.example.com/graphql?", "/graphql"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := target(u); got != tc.want {
				t.Fatalf("target = %q, want %q", got, tc.want)
			}
		})
	}
}
