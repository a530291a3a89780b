package rules

import (
	"fmt"
	"slices"
	"strings"
)

// ExprMetricNames returns the sorted, distinct metric names that a PromQL expression selects.
//
// It is a tokenizer with just enough PromQL grammar to tell metric names from everything else that looks like an
// identifier: function and aggregation names (followed by a parenthesis or a keyword), keywords, label names in
// selectors and in by/without/on/ignoring/group_left/group_right lists, strings, numbers and durations. It
// understands the quoted names of Prometheus 3 ({"name"}) and {__name__="name"}. A selector that matches
// __name__ any other way (regex, negation) is an error: its names cannot be listed, and silently dropping them
// would let a check built on this list pass without checking. It does not validate the expression beyond
// balanced brackets and terminated strings; promtool does that.
func ExprMetricNames(expr string) ([]string, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	w := walker{toks: toks}
	if err := w.walk(); err != nil {
		return nil, err
	}
	slices.Sort(w.names)
	return slices.Compact(w.names), nil
}

type tokenKind int

const (
	tokIdent tokenKind = iota
	tokString
	tokNumber
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokLBracket
	tokRBracket
	tokComma
	tokMatch // =, !=, =~, !~ (inside braces these are matchers; elsewhere only != is meaningful and it is ignored)
	tokOther // arithmetic, comparison, @, :, ...
)

type token struct {
	kind tokenKind
	text string // for strings: the unquoted value
	pos  int    // byte offset in the expression
}

var punctuation = map[byte]tokenKind{
	'(': tokLParen, ')': tokRParen, '{': tokLBrace, '}': tokRBrace, '[': tokLBracket, ']': tokRBracket, ',': tokComma,
}

// keywords are PromQL words that are never metric names (the lexer matches them case-insensitively).
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "avg": true, "count": true, "min": true, "max": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "count_values": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "start": true, "end": true, "step": true, "inf": true, "nan": true,
}

// labelListKeywords are followed by an optional parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			val, end, err := lexString(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tokString, text: val, pos: i})
			i = end
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			start := i
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				// An exponent sign belongs to the number (1e-3), unless the number is hexadecimal.
				if (s[i] == 'e' || s[i] == 'E') && i+1 < len(s) && (s[i+1] == '+' || s[i+1] == '-') &&
					!strings.HasPrefix(strings.ToLower(s[start:]), "0x") {
					i++
				}
				i++
			}
			toks = append(toks, token{kind: tokNumber, text: s[start:i], pos: start})
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			toks = append(toks, token{kind: tokIdent, text: s[start:i], pos: start})
		default:
			kind, ok := punctuation[c]
			n := 1
			switch {
			case ok:
			case strings.HasPrefix(s[i:], "=="), strings.HasPrefix(s[i:], "<="), strings.HasPrefix(s[i:], ">="):
				kind, n = tokOther, 2
			case strings.HasPrefix(s[i:], "=~"), strings.HasPrefix(s[i:], "!~"), strings.HasPrefix(s[i:], "!="):
				kind, n = tokMatch, 2
			case c == '=':
				kind = tokMatch
			default:
				kind = tokOther
			}
			toks = append(toks, token{kind: kind, text: s[i : i+n], pos: i})
			i += n
		}
	}
	return toks, nil
}

// lexString reads the string literal that starts at s[start] and returns its value and the offset after it.
func lexString(s string, start int) (string, int, error) {
	quote := s[start]
	var b strings.Builder
	for i := start + 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\\' && quote != '`':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("offset %d: unterminated string", start)
			}
			i++
			b.WriteByte(s[i])
		case c == '\n' && quote != '`':
			return "", 0, fmt.Errorf("offset %d: unterminated string (newline inside %c-quoted string)", start, quote)
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("offset %d: unterminated string", start)
}

type walker struct {
	toks  []token
	i     int
	names []string
}

func (w *walker) peek(kind tokenKind) bool { return w.i < len(w.toks) && w.toks[w.i].kind == kind }

func (w *walker) walk() error {
	var open []token // unclosed ( and [
	for w.i < len(w.toks) {
		t := w.toks[w.i]
		w.i++
		switch t.kind {
		case tokIdent:
			lower := strings.ToLower(t.text)
			switch {
			case labelListKeywords[lower]:
				if w.peek(tokLParen) {
					if err := w.skipLabelList(); err != nil {
						return err
					}
				}
			case keywords[lower], w.peek(tokLParen):
				// A keyword, or the name of a function call.
			default:
				w.names = append(w.names, t.text)
				if w.peek(tokLBrace) {
					open := w.toks[w.i].pos
					w.i++
					if _, err := w.matchers(open); err != nil {
						return err
					}
				}
			}
		case tokLBrace:
			named, err := w.matchers(t.pos)
			if err != nil {
				return err
			}
			if !named {
				return fmt.Errorf("offset %d: selector without a metric name", t.pos)
			}
		case tokLParen:
			open = append(open, t)
		case tokLBracket:
			// Ranges, subquery steps and durations: nothing in them names a metric.
			for w.i < len(w.toks) && w.toks[w.i].kind != tokRBracket {
				w.i++
			}
			if !w.peek(tokRBracket) {
				return fmt.Errorf("offset %d: unclosed [", t.pos)
			}
			w.i++
		case tokRParen:
			if len(open) == 0 {
				return fmt.Errorf("offset %d: unexpected )", t.pos)
			}
			open = open[:len(open)-1]
		case tokRBrace, tokRBracket:
			return fmt.Errorf("offset %d: unexpected %s", t.pos, t.text)
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("offset %d: unclosed (", open[len(open)-1].pos)
	}
	return nil
}

// skipLabelList consumes "( label, label, ... )" after by/without/on/ignoring/group_left/group_right.
func (w *walker) skipLabelList() error {
	start := w.toks[w.i].pos
	w.i++ // (
	for w.i < len(w.toks) {
		t := w.toks[w.i]
		w.i++
		switch t.kind {
		case tokRParen:
			return nil
		case tokIdent, tokString, tokComma:
		default:
			return fmt.Errorf("offset %d: unexpected %q in label list", t.pos, t.text)
		}
	}
	return fmt.Errorf("offset %d: unclosed label list", start)
}

// matchers consumes the matchers of a selector up to and including "}" and records the metric names they
// set: {__name__="x"} and, in Prometheus 3 syntax, a bare quoted name {"x"}. It reports whether one was found.
func (w *walker) matchers(open int) (bool, error) {
	named := false
	for w.i < len(w.toks) {
		t := w.toks[w.i]
		w.i++
		switch t.kind {
		case tokRBrace:
			return named, nil
		case tokComma:
		case tokIdent, tokString:
			if !w.peek(tokMatch) {
				if t.kind != tokString {
					return false, fmt.Errorf("offset %d: label %s without a matcher", t.pos, t.text)
				}
				w.names = append(w.names, t.text)
				named = true
				continue
			}
			op := w.toks[w.i]
			w.i++
			if !w.peek(tokString) {
				return false, fmt.Errorf("offset %d: matcher %s%s without a quoted value", t.pos, t.text, op.text)
			}
			val := w.toks[w.i]
			w.i++
			if t.text == "__name__" {
				if op.text != "=" {
					return false, fmt.Errorf("offset %d: __name__%s%q names metrics that cannot be listed; select them by name",
						t.pos, op.text, val.text)
				}
				w.names = append(w.names, val.text)
				named = true
			}
		default:
			return false, fmt.Errorf("offset %d: unexpected %q in selector", t.pos, t.text)
		}
	}
	return false, fmt.Errorf("offset %d: unclosed {", open)
}
