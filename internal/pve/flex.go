package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PVE's JSON is loosely typed: Perl hands out numbers as strings when they came from a regex capture (loadavg,
// cpuinfo.mhz, LXC pressure values, PVE 7.4's LXC vmid) and booleans as 0/1. The types below accept every shape
// PVE has been seen to send for a field, so one quirk never fails a whole response.

var jsonNull = []byte("null")

// numberText returns the text of a number sent bare or quoted (trimmed); "" for null and the empty string.
// ok is false when b is not valid JSON.
func numberText(b []byte) (string, bool) {
	if len(b) == 0 || bytes.Equal(b, jsonNull) {
		return "", true
	}
	if b[0] != '"' {
		return string(b), true
	}
	if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 {
		return string(bytes.TrimSpace(b[1 : len(b)-1])), true
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return "", false
	}
	return strings.TrimSpace(str), true
}

// flexFloat is a float64 that PVE may send as a JSON number or a numeric string. null and "" decode as 0.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s, ok := numberText(b)
	if !ok {
		return fmt.Errorf("number expected, got %.40s", b)
	}
	return f.parse(s)
}

// parse sets f from the text of a number ("" is 0).
func (f *flexFloat) parse(s string) error {
	*f = 0
	if s == "" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("number expected, got %.40q", s)
	}
	*f = flexFloat(v)
	return nil
}

// flexInt is an int64 that PVE may send as a JSON number (integral or not) or a numeric string.
// Fractional values are truncated toward zero: RRD averages of byte counters arrive as floats.
type flexInt int64

func (i *flexInt) UnmarshalJSON(b []byte) error {
	s, ok := numberText(b)
	if !ok {
		return fmt.Errorf("integer expected, got %.40s", b)
	}
	return i.parse(s)
}

// parse sets i from the text of a number ("" is 0).
func (i *flexInt) parse(s string) error {
	*i = 0
	if s == "" {
		return nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*i = flexInt(v)
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v >= math.MaxInt64 || v <= math.MinInt64 {
		return fmt.Errorf("integer expected, got %.40q", s)
	}
	*i = flexInt(v)
	return nil
}

// uint64 returns the value as a byte count or counter; negative values (never sent for these) become 0.
func (i flexInt) uint64() uint64 {
	if i < 0 {
		return 0
	}
	return uint64(i)
}

// pveBool is a boolean that PVE sends as 0/1 (number or string); JSON true/false and null are accepted too.
type pveBool bool

func (p *pveBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*p = true
		return nil
	case "false":
		*p = false
		return nil
	}
	s, ok := numberText(b)
	if !ok {
		return fmt.Errorf("boolean (0/1) expected, got %.40s", b)
	}
	return p.parse(s)
}

// parse sets p from the text of a number or of "true"/"false" ("" is false). Numbers other than 0 and 1 are
// true unless zero, as in Perl.
func (p *pveBool) parse(s string) error {
	switch s {
	case "", "0", "false":
		*p = false
		return nil
	case "1", "true":
		*p = true
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("boolean (0/1) expected, got %.40q", s)
	}
	*p = v != 0
	return nil
}

// flexString is a string that PVE may send as a JSON number (a task's id, an HA resource's vmid).
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, jsonNull) {
		*s = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	if _, err := strconv.ParseFloat(string(b), 64); err != nil {
		return fmt.Errorf("string expected, got %.40s", b)
	}
	*s = flexString(b)
	return nil
}
