package graph

import (
	"bytes"
	"encoding/json"
)

// duplicateKey returns a member name that one object of doc, which must
// be valid JSON, holds twice; with foldTop, names of the top-level object
// are the same in any case. encoding/json keeps the last of them and
// another reader may keep the first, so a body naming operationName twice,
// or an input field twice, would mean one thing to a proxy or a log and
// another to Tollgate: it is refused instead. One pass over the bytes, and
// no allocation for a document without escaped names.
func duplicateKey(doc []byte, foldTop bool) (string, bool) {
	type frame struct {
		object    bool
		keysFrom  int  // where this object's names start in keys
		expectKey bool // the next string is a member name
	}
	var stackBuf [32]frame
	stack := stackBuf[:0]
	var keyBuf [64][]byte
	keys := keyBuf[:0]
	for i := 0; i < len(doc); i++ {
		switch c := doc[i]; c {
		case '{':
			stack = append(stack, frame{object: true, keysFrom: len(keys), expectKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if n := len(stack); n > 0 {
				if f := stack[n-1]; f.object {
					keys = keys[:f.keysFrom]
				}
				stack = stack[:n-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expectKey = true
			}
		case '"':
			start := i + 1
			escaped := false
			for i++; i < len(doc) && doc[i] != '"'; i++ {
				if doc[i] == '\\' {
					escaped = true
					i++
				}
			}
			n := len(stack)
			if n == 0 || !stack[n-1].object || !stack[n-1].expectKey {
				continue
			}
			stack[n-1].expectKey = false
			name := doc[start:i]
			if escaped { // compare names as they read, "\u006frg" as "org"
				var s string
				if json.Unmarshal(doc[start-1:i+1], &s) == nil {
					name = []byte(s)
				}
			}
			// A request body's own members are read into a struct, which
			// encoding/json matches without regard to case ("QUERY" is
			// query); any other object is read into a map, which does not.
			same := bytes.Equal
			if n == 1 && foldTop {
				same = bytes.EqualFold
			}
			for _, k := range keys[stack[n-1].keysFrom:] {
				if same(k, name) {
					return string(name), true
				}
			}
			keys = append(keys, name)
		}
	}
	return "", false
}
