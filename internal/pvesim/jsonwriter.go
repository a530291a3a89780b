package pvesim

import (
	"strconv"
	"unicode/utf8"
)

// jsonWriter appends JSON objects to a buffer without reflection, for the large /cluster/resources answer.
type jsonWriter struct {
	b     []byte
	first bool // no key written yet in the current object
	items int  // objects written into the enclosing array
}

func (w *jsonWriter) open() {
	if w.items > 0 {
		w.b = append(w.b, ',')
	}
	w.items++
	w.b = append(w.b, '{')
	w.first = true
}

func (w *jsonWriter) close() { w.b = append(w.b, '}') }

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) int(k string, v int) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}

func (w *jsonWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// float writes v like encoding/json does for the magnitudes the simulator produces (ratios, rates).
func (w *jsonWriter) float(k string, v float64) {
	w.key(k)
	w.b = strconv.AppendFloat(w.b, v, 'f', -1, 64)
}

// appendJSONString quotes s, escaping what JSON requires (and invalid UTF-8, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
