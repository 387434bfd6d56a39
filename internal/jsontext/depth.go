package jsontext

// MaxDepth is how deep arrays and objects may nest inside each other in a
// text encoding/json reads (its own limit, which it reports only as a
// syntax error); a client told "not valid JSON" for valid JSON nested deeper
// cannot tell what to change.
const MaxDepth = 10000

// TooDeep reports whether b, read as JSON, nests arrays and objects more
// than MaxDepth deep. It only counts brackets outside strings: whether the
// rest is JSON is the decoder's to say.
func TooDeep(b []byte) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > MaxDepth {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
