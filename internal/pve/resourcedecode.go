package pve

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	jsoniter "github.com/json-iterator/go"
)

// /cluster/resources is the one large answer of a steady-state round (1.7 MB for 5,000 guests) and every scrape
// reads it. encoding/json's reflection, with a custom UnmarshalJSON call (and a rescan) for each of ~17 loosely
// typed numbers per entry, spent about 70 ms of CPU on it; reading the entries with json-iterator's Iterator
// (the JSON library client_golang's API client already uses) and a switch on the key takes about a third of
// that and half the memory (BenchmarkDecodeClusterResources). The same reader serves the node-level guest lists
// and /nodes, which share the keys, so there is one decoder for resourceEntry.

// resourceList is the data array of /cluster/resources (or /nodes, /nodes/{node}/{qemu,lxc}).
type resourceList []resourceEntry

// UnmarshalJSON decodes a JSON array of resource entries.
func (l *resourceList) UnmarshalJSON(b []byte) error {
	it := jsoniter.ConfigDefault.BorrowIterator(b)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	l.readFrom(it)
	if err := iterError(it); err != nil {
		return fmt.Errorf("decoding resource list: %w", err)
	}
	return nil
}

// readFrom appends the entries of a JSON array (null is none) to l.
func (l *resourceList) readFrom(it *jsoniter.Iterator) {
	readEntries(it, func(e *resourceEntry) { *l = append(*l, *e) })
}

// readEntries reads a JSON array of resource entries (null is none) and hands each to use, which must not keep
// the pointer: one entry is reused, so that /cluster/resources goes straight into Resources.
func readEntries(it *jsoniter.Iterator, use func(*resourceEntry)) {
	if it.ReadNil() {
		return
	}
	if it.WhatIsNext() != jsoniter.ArrayValue {
		it.ReportError("resource list", "array expected")
		return
	}
	var e resourceEntry
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		e = resourceEntry{}
		e.readFrom(it)
		if it.Error != nil {
			return false
		}
		use(&e)
		return true
	})
}

// iterError is the iterator's error, or an error for anything but whitespace after the value. io.EOF after
// a complete value is not an error.
func iterError(it *jsoniter.Iterator) error {
	if it.Error != nil && !errors.Is(it.Error, io.EOF) {
		return it.Error
	}
	if next := it.WhatIsNext(); next != jsoniter.InvalidValue {
		return errors.New("unexpected data after the value")
	}
	return nil
}

// readFrom fills e from a JSON object. Unknown keys are skipped; null leaves a field zero, as encoding/json does.
func (e *resourceEntry) readFrom(it *jsoniter.Iterator) {
	if it.WhatIsNext() != jsoniter.ObjectValue {
		if it.ReadNil() {
			return
		}
		it.ReportError("resource entry", "object expected")
		return
	}
	it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
		switch key {
		case "id":
			e.ID = readString(it)
		case "type":
			e.Type = readString(it)
		case "node":
			e.Node = readString(it)
		case "status":
			e.Status = readString(it)
		case "name":
			e.Name = readString(it)
		case "vmid":
			readFlexInt(it, &e.VMID)
		case "template":
			readPVEBool(it, &e.Template)
		case "tags":
			e.Tags = readString(it)
		case "pool":
			e.Pool = readString(it)
		case "lock":
			e.Lock = readString(it)
		case "hastate":
			e.HAState = readString(it)
		case "cpu":
			readFlexFloat(it, &e.CPU)
		case "maxcpu":
			readFlexFloat(it, &e.MaxCPU)
		case "cpus":
			readFlexFloat(it, &e.CPUs)
		case "mem":
			readFlexInt(it, &e.Mem)
		case "maxmem":
			readFlexInt(it, &e.MaxMem)
		case "memhost":
			e.MemHost = readOptional(it, e.MemHost, readFlexInt)
		case "disk":
			readFlexInt(it, &e.Disk)
		case "maxdisk":
			readFlexInt(it, &e.MaxDisk)
		case "netin":
			readFlexInt(it, &e.NetIn)
		case "netout":
			readFlexInt(it, &e.NetOut)
		case "diskread":
			readFlexInt(it, &e.DiskRead)
		case "diskwrite":
			readFlexInt(it, &e.DiskWrite)
		case "uptime":
			readFlexInt(it, &e.Uptime)
		case "level":
			e.Level = readString(it)
		case "storage":
			e.Storage = readString(it)
		case "plugintype":
			e.PluginType = readString(it)
		case "content":
			e.Content = readString(it)
		case "shared":
			readPVEBool(it, &e.Shared)
		case "pressurecpusome":
			e.CPUSome = readOptional(it, e.CPUSome, readFlexFloat)
		case "pressurecpufull":
			e.CPUFull = readOptional(it, e.CPUFull, readFlexFloat)
		case "pressureiosome":
			e.IOSome = readOptional(it, e.IOSome, readFlexFloat)
		case "pressureiofull":
			e.IOFull = readOptional(it, e.IOFull, readFlexFloat)
		case "pressurememorysome":
			e.MemorySome = readOptional(it, e.MemorySome, readFlexFloat)
		case "pressurememoryfull":
			e.MemoryFull = readOptional(it, e.MemoryFull, readFlexFloat)
		default:
			it.Skip()
		}
		return it.Error == nil
	})
}

// readString reads a string (null is ""). Invalid UTF-8 becomes U+FFFD, as encoding/json does, so that a label
// value built from it is valid in the exposition.
func readString(it *jsoniter.Iterator) string {
	if it.ReadNil() {
		return ""
	}
	return validUTF8(it.ReadString())
}

// validUTF8 replaces each byte of s that is not part of valid UTF-8 with U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// readNumberText returns the text of a number sent bare or quoted, "" for null; ok is false after an error.
func readNumberText(it *jsoniter.Iterator, what string) (text string, ok bool) {
	switch it.WhatIsNext() {
	case jsoniter.NumberValue:
		return string(it.ReadNumber()), it.Error == nil
	case jsoniter.StringValue:
		return strings.TrimSpace(it.ReadString()), it.Error == nil
	case jsoniter.NilValue:
		it.ReadNil()
		return "", true
	}
	it.ReportError(what, what+" expected")
	return "", false
}

func readFlexFloat(it *jsoniter.Iterator, f *flexFloat) {
	if text, ok := readNumberText(it, "number"); ok {
		if err := f.parse(text); err != nil {
			it.ReportError("number", err.Error())
		}
	}
}

func readFlexInt(it *jsoniter.Iterator, i *flexInt) {
	if text, ok := readNumberText(it, "integer"); ok {
		if err := i.parse(text); err != nil {
			it.ReportError("integer", err.Error())
		}
	}
}

func readPVEBool(it *jsoniter.Iterator, p *pveBool) {
	if it.WhatIsNext() == jsoniter.BoolValue {
		*p = pveBool(it.ReadBool())
		return
	}
	if text, ok := readNumberText(it, "boolean (0/1)"); ok {
		if err := p.parse(text); err != nil {
			it.ReportError("boolean", err.Error())
		}
	}
}

// readOptional reads a value into a pointer field: null sets it to nil, as encoding/json does.
func readOptional[T any](it *jsoniter.Iterator, _ *T, read func(*jsoniter.Iterator, *T)) *T {
	if it.ReadNil() {
		return nil
	}
	v := new(T)
	read(it, v)
	return v
}
