package pve

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DeviceParallel is a parallel port passed through from the host (qemu parallelN).
const DeviceParallel LocalDeviceKind = "parallel"

// Default memory of a guest whose config has no memory key, in MiB (qemu-server and pve-container defaults).
const defaultMemoryMiB = 512

var (
	qemuDiskKey   = regexp.MustCompile(`^(?:(?:scsi|virtio|ide|sata)\d+|efidisk0|tpmstate0)$`)
	unusedKey     = regexp.MustCompile(`^unused\d+$`)
	mountPointKey = regexp.MustCompile(`^mp\d+$`)
	hostPCIKey    = regexp.MustCompile(`^hostpci\d+$`)
	usbKey        = regexp.MustCompile(`^usb\d+$`)
	serialKey     = regexp.MustCompile(`^serial\d+$`)
	parallelKey   = regexp.MustCompile(`^parallel\d+$`)
	lxcDevKey     = regexp.MustCompile(`^dev\d+$`)
)

// ParseGuestConfig extracts the facts placement needs from a guest config as GET …/config returns it: values as
// strings (numbers in their JSON text) and, for LXC, the raw "lxc" entries as key/value pairs. It never fails:
// values it cannot read are left at their zero value, because one odd key must not hide a guest.
func ParseGuestConfig(t GuestType, kv map[string]string, lxcRaw [][2]string) *GuestConfig {
	gc := &GuestConfig{
		Digest: kv["digest"],
		OnBoot: parseBool(kv["onboot"]),
		Tags:   SplitTags(kv["tags"]),
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return naturalLess(keys[i], keys[j]) })

	switch t {
	case TypeLXC:
		gc.Cores = atoi(kv["cores"])
		gc.VCPUs = gc.Cores
		gc.Memory = mibToBytes(kv["memory"])
		for _, k := range keys {
			v := kv[k]
			switch {
			case k == "rootfs":
				if d, ok := parseDisk(k, v, true); ok {
					gc.Disks = append(gc.Disks, d)
				}
			case mountPointKey.MatchString(k):
				mp := parseMountPoint(k, v)
				gc.MountPoints = append(gc.MountPoints, mp)
				if !mp.Bind {
					if d, ok := parseDisk(k, v, true); ok {
						gc.Disks = append(gc.Disks, d)
					}
				}
			case unusedKey.MatchString(k):
				if d, ok := parseDisk(k, v, true); ok {
					gc.Disks = append(gc.Disks, d)
				}
			case lxcDevKey.MatchString(k):
				gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DeviceLXCDev, Value: v})
			}
		}
		devs, mps := parseLXCRaw(lxcRaw)
		gc.LocalDevices = append(gc.LocalDevices, devs...)
		gc.MountPoints = append(gc.MountPoints, mps...)
	default:
		gc.Cores = atoiDefault(kv["cores"], 1)
		gc.Sockets = atoiDefault(kv["sockets"], 1)
		gc.VCPUs = gc.Cores * gc.Sockets
		if n := atoi(kv["vcpus"]); n > 0 {
			gc.VCPUs = n
		}
		gc.Memory = qemuMemory(kv["memory"])
		for _, k := range keys {
			v := kv[k]
			switch {
			case qemuDiskKey.MatchString(k), unusedKey.MatchString(k):
				d, ok := parseDisk(k, v, false)
				if !ok {
					continue
				}
				gc.Disks = append(gc.Disks, d)
				if strings.HasPrefix(d.Volume, "/dev/") || (d.Volume == "cdrom" && d.CDROM) {
					gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DeviceRawDisk, Value: d.Volume})
				}
			case hostPCIKey.MatchString(k):
				gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DevicePCI, Value: v})
			case usbKey.MatchString(k):
				if first, _ := propertyHead(v); first != "spice" && propertyValue(v, "host") != "spice" {
					gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DeviceUSB, Value: v})
				}
			case serialKey.MatchString(k):
				if v != "socket" {
					gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DeviceSerial, Value: v})
				}
			case parallelKey.MatchString(k):
				gc.LocalDevices = append(gc.LocalDevices, LocalDevice{Key: k, Kind: DeviceParallel, Value: v})
			}
		}
	}
	return gc
}

// parseDisk reads a drive or volume property string: "local-zfs:vm-100-disk-0,iothread=1,size=32G".
// ok is false for an empty drive ("none", or a cdrom drive without medium).
func parseDisk(key, value string, lxc bool) (Disk, bool) {
	volume, named := propertyHead(value)
	if volume == "" {
		volume = named["file"]
		if lxc {
			volume = named["volume"]
		}
	}
	if volume == "" || volume == "none" {
		return Disk{}, false
	}
	d := Disk{
		Key:     key,
		Volume:  volume,
		Storage: volumeStorage(volume),
		Size:    ParseSize(named["size"]),
		CDROM:   named["media"] == "cdrom",
		Unused:  unusedKey.MatchString(key),
	}
	return d, true
}

// volumeStorage returns the storage ID of a volid ("local-zfs:vm-100-disk-0" → "local-zfs"); "" for a path.
func volumeStorage(volume string) string {
	if strings.HasPrefix(volume, "/") {
		return ""
	}
	storage, _, ok := strings.Cut(volume, ":")
	if !ok {
		return ""
	}
	return storage
}

func parseMountPoint(key, value string) MountPoint {
	source, named := propertyHead(value)
	if source == "" {
		source = named["volume"]
	}
	return MountPoint{
		Key:    key,
		Source: source,
		Path:   named["mp"],
		Bind:   strings.HasPrefix(source, "/"),
		Shared: parseBool(named["shared"]),
	}
}

// parseLXCRaw classifies raw "lxc.*" keys: device cgroup rules and mounts of /dev paths pin a container to its
// host; other host-path mount entries are bind mounts.
func parseLXCRaw(raw [][2]string) ([]LocalDevice, []MountPoint) {
	var devs []LocalDevice
	var mps []MountPoint
	for _, kv := range raw {
		key, value := kv[0], strings.TrimSpace(kv[1])
		switch {
		case strings.HasPrefix(key, "lxc.cgroup") && strings.HasSuffix(key, ".devices.allow"):
			devs = append(devs, LocalDevice{Key: key, Kind: DeviceLXCDev, Value: value})
		case key == "lxc.mount.entry":
			fields := strings.Fields(value)
			if len(fields) == 0 {
				continue
			}
			src := fields[0]
			switch {
			case strings.HasPrefix(src, "/dev/") || src == "/dev":
				devs = append(devs, LocalDevice{Key: key, Kind: DeviceLXCDev, Value: value})
			case strings.HasPrefix(src, "/"):
				mp := MountPoint{Key: key, Source: src, Bind: true}
				if len(fields) > 1 {
					mp.Path = "/" + strings.TrimPrefix(fields[1], "/")
				}
				mps = append(mps, mp)
			}
		}
	}
	return devs, mps
}

// propertyHead splits a PVE property string into its leading unnamed value (if the first element has no "=")
// and its named values.
func propertyHead(s string) (string, map[string]string) {
	named := map[string]string{}
	head := ""
	for i, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if i == 0 {
				head = strings.TrimSpace(part)
			}
			continue
		}
		named[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return head, named
}

func propertyValue(s, key string) string {
	_, named := propertyHead(s)
	return named[key]
}

// qemuMemory reads qemu's memory: "2048" before PVE 8.1, a property string "current=2048[,…]" since; in MiB.
func qemuMemory(s string) uint64 {
	if s == "" {
		return defaultMemoryMiB << 20
	}
	head, named := propertyHead(s)
	if head == "" {
		head = named["current"]
	}
	return mibToBytes(head)
}

func mibToBytes(s string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		if s == "" {
			return defaultMemoryMiB << 20
		}
		return 0
	}
	if n > (1<<64-1)>>20 {
		return 0
	}
	return n << 20
}

// ParseSize reads a PVE disk size ("32G", "631M", "1.5T", "4096" bytes) in bytes; 0 when absent or malformed.
func ParseSize(s string) uint64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	mult := 1.0
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	case 'T', 't':
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f*mult >= 1<<63 {
		return 0
	}
	return uint64(f * mult)
}

// SplitTags splits a tag list the way PVE::Tools::split_list reads it: separated by ';', ',' or whitespace.
// PVE writes tags ';'-joined and already normalised (lower-cased unless the datacenter's tag-style is
// case-sensitive), so case is kept as written; duplicates are dropped, first occurrence wins.
func SplitTags(s string) []string {
	if s == "" {
		return nil
	}
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0
	})
	if len(fields) == 0 {
		return nil
	}
	out := fields[:0]
	for _, f := range fields {
		dup := false
		for _, o := range out {
			if o == f {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

func parseBool(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && s != "0" && !strings.EqualFold(s, "false") && !strings.EqualFold(s, "no") && !strings.EqualFold(s, "off")
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		if f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil && f >= 0 && f < 1<<31 {
			return int(f)
		}
		return 0
	}
	return n
}

func atoiDefault(s string, def int) int {
	if n := atoi(s); n > 0 {
		return n
	}
	return def
}

// naturalLess orders "scsi2" before "scsi10", so disks come out in the order PVE shows them.
func naturalLess(a, b string) bool {
	pa, na := splitNum(a)
	pb, nb := splitNum(b)
	if pa != pb {
		return pa < pb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || len(s)-i > 9 {
		return s, -1
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

// rawConfig is a guest config as JSON: scalar values of any JSON type, and LXC's "lxc" list of pairs.
type rawConfig map[string]rawConfigValue

type rawConfigValue struct {
	text  string
	pairs [][2]string
}

func (v *rawConfigValue) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v.text = s
	case '[':
		var list [][]string
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("list of [key, value] pairs expected: %w", err)
		}
		for _, p := range list {
			if len(p) == 2 {
				v.pairs = append(v.pairs, [2]string{p[0], p[1]})
			}
		}
	case '{', 'n':
		// Objects are not config values; null is an unset key.
	default:
		v.text = string(b)
	}
	return nil
}

// split returns the scalar values and the raw lxc pairs.
func (r rawConfig) split() (map[string]string, [][2]string) {
	kv := make(map[string]string, len(r))
	var pairs [][2]string
	for k, v := range r {
		if v.pairs != nil {
			pairs = append(pairs, v.pairs...)
			continue
		}
		kv[k] = v.text
	}
	return kv, pairs
}
